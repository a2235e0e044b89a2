package tests

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/fixture"
)

// Timeouts are generous: guests run under TCG on two shared cores.
const (
	bootTimeout = 4 * time.Minute
	exitTimeout = 2 * time.Minute
)

type inventoryEvent struct {
	Disks []inventory.Disk `json:"disks"`
}

// TestInventoryFiveBuses boots the rescue image with a disk on every bus and
// checks that what it reports of each disk is what blkid and sfdisk say of
// the same image on the host; then that it powers off cleanly.
func TestInventoryFiveBuses(t *testing.T) {
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	disks, err := fixture.FiveBuses(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: fixture.QEMU(disks),
		Cmdline: "passeur.mode=poweroff passeur.debug=sysfs"})

	if _, err := vm.WaitEvent("ready", bootTimeout); err != nil {
		t.Fatal(err)
	}
	// The control channel serves the events on vsock; the guest checks it
	// through vsock_loopback (these hosts have no vhost-vsock).
	ctl, err := vm.WaitEvent("control", bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Transport, Selfcheck string }
	if err := ctl.Decode(&c); err != nil || c.Transport != "vsock" || c.Selfcheck != "first event ready" {
		t.Errorf("control event %s", ctl.Raw)
	}
	ev, err := vm.WaitEvent("inventory", bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var inv inventoryEvent
	if err := ev.Decode(&inv); err != nil {
		t.Fatal(err)
	}
	bySerial := map[string]inventory.Disk{}
	for _, d := range inv.Disks {
		bySerial[d.Serial] = d
	}
	if len(inv.Disks) != len(disks) {
		t.Errorf("guest reports %d disks, want %d: %+v", len(inv.Disks), len(disks), inv.Disks)
	}
	for _, want := range disks {
		got, ok := bySerial[want.Serial]
		if !ok {
			t.Errorf("no disk with serial %s in the inventory", want.Serial)
			continue
		}
		checkDisk(t, want, got)
	}

	// The capture of /sys the guest read, replayed on the host over the same
	// images, must give the same inventory.
	sysEv, err := vm.WaitEvent("sysfs", exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var capture struct{ Txtar string }
	if err := sysEv.Decode(&capture); err != nil {
		t.Fatal(err)
	}
	replayed, err := inventory.Scan(inventory.ParseCapture([]byte(capture.Txtar)), imageOpener(inv.Disks, disks))
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, replayed, inv.Disks) {
		t.Errorf("inventory replayed from the sysfs capture differs from the guest's:\nreplayed %+v\nguest    %+v", replayed, inv.Disks)
	}
	if out := os.Getenv("PASSEUR_UPDATE_TESTDATA"); out != "" {
		os.WriteFile(filepath.Join(out, "qemu-five-buses.txtar"), []byte(capture.Txtar), 0o644)
		b, _ := json.MarshalIndent(inv.Disks, "", "  ")
		os.WriteFile(filepath.Join(out, "qemu-five-buses.json"), b, 0o644)
	}

	if _, err := vm.WaitEvent("poweroff", exitTimeout); err != nil {
		t.Fatal(err)
	}
	if err := vm.Wait(exitTimeout); err != nil {
		t.Errorf("QEMU did not exit cleanly after poweroff: %v", err)
	}
	if strings.Contains(vm.Console(), "Kernel panic") {
		t.Error("kernel panic on the console")
	}
	for _, ev := range vm.Events() {
		if ev.Type == "error" {
			t.Errorf("error event on a clean boot: %s", ev.Raw)
		}
	}
}

func checkDisk(t *testing.T, want fixture.Disk, got inventory.Disk) {
	t.Helper()
	st, err := os.Stat(want.Path)
	if err != nil {
		t.Fatal(err)
	}
	name := want.Serial
	if got.Bus != string(want.Bus) {
		t.Errorf("%s: bus %q, want %q", name, got.Bus, want.Bus)
	}
	if got.Size != st.Size() {
		t.Errorf("%s: size %d, image is %d bytes", name, got.Size, st.Size())
	}
	if got.Content != want.Content {
		t.Errorf("%s: content %q, want %q", name, got.Content, want.Content)
	}
	switch want.Content {
	case inventory.Filesystem:
		checkFS(t, name, got.FS, fixture.Blkid(want.Path, 0, 0))
	case inventory.Partitioned:
		sf, err := fixture.Sfdisk(want.Path)
		if err != nil {
			t.Fatal(err)
		}
		parts := sf.Partitions
		if got.Table == nil || got.Table.Type != sf.Label || !strings.EqualFold(got.Table.ID, sf.ID) {
			t.Errorf("%s: table %+v, sfdisk says %s %s", name, got.Table, sf.Label, sf.ID)
		}
		if len(got.Partitions) != len(parts) {
			t.Fatalf("%s: %d partitions, sfdisk says %d", name, len(got.Partitions), len(parts))
		}
		for i, p := range got.Partitions {
			w := parts[i]
			if p.Start != int64(w.Start)*512 || p.Size != int64(w.Size)*512 || !strings.EqualFold(p.PartUUID, w.UUID) ||
				p.PartLabel != w.Name || !strings.EqualFold(p.PartType, w.Type) {
				t.Errorf("%s partition %d: %+v, sfdisk says %+v", name, i+1, p, w)
			}
			checkFS(t, p.Name, p.FS, fixture.Blkid(want.Path, p.Start, p.Size))
		}
	default:
		if got.FS != nil || got.Table != nil || len(got.Partitions) != 0 {
			t.Errorf("%s: reported %+v, want no table and no filesystem", name, got)
		}
	}
}

// checkFS compares a reported filesystem with blkid's view of it.
func checkFS(t *testing.T, name string, got *fsprobe.FS, want map[string]string) {
	t.Helper()
	if want["TYPE"] == "" {
		if got != nil {
			t.Errorf("%s: filesystem %+v where blkid finds none", name, got)
		}
		return
	}
	if got == nil {
		t.Errorf("%s: no filesystem where blkid finds %v", name, want)
		return
	}
	if got.Type != want["TYPE"] || got.Label != want["LABEL"] || got.UUID != want["UUID"] {
		t.Errorf("%s: filesystem %+v, blkid says TYPE=%s LABEL=%s UUID=%s", name, got, want["TYPE"], want["LABEL"], want["UUID"])
	}
}

// imageOpener opens, on the host, the image behind each device the guest
// named: disks by serial, partitions as sections of them.
func imageOpener(guest []inventory.Disk, disks []fixture.Disk) inventory.Opener {
	paths := map[string]string{}
	sections := map[string][2]int64{}
	for _, g := range guest {
		for _, d := range disks {
			if d.Serial == g.Serial {
				paths[g.Name] = d.Path
				for _, p := range g.Partitions {
					paths[p.Name] = d.Path
					sections[p.Name] = [2]int64{p.Start, p.Size}
				}
			}
		}
	}
	return func(name string) (inventory.Device, error) {
		f, err := os.Open(paths[name])
		if err != nil {
			return nil, err
		}
		if s, ok := sections[name]; ok {
			return sectionDevice{io.NewSectionReader(f, s[0], s[1]), f}, nil
		}
		return f, nil
	}
}

type sectionDevice struct {
	*io.SectionReader
	io.Closer
}

func sameJSON(t *testing.T, a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	json.Unmarshal(ja, &va)
	json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}
