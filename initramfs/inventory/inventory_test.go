package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// nopDevice is a device of zeros: the sysfs-derived part of the inventory
// does not depend on content.
type nopDevice struct{ *bytes.Reader }

func (nopDevice) Close() error { return nil }

func zeros(string) (Device, error) { return nopDevice{bytes.NewReader(make([]byte, 2<<20))}, nil }

// TestScanCapturedQEMU replays the /sys a QEMU guest with one disk on each
// bus showed (captured with passeur.debug=sysfs by tests/) and checks what
// the inventory derives from sysfs against what that guest reported.
func TestScanCapturedQEMU(t *testing.T) {
	data, err := os.ReadFile("testdata/qemu-five-buses.txtar")
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := os.ReadFile("testdata/qemu-five-buses.json")
	if err != nil {
		t.Fatal(err)
	}
	var want []Disk
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatal(err)
	}
	got, err := Scan(ParseCapture(data), zeros)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d disks, want %d (loop devices must be left out)", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Name != w.Name || g.Bus != w.Bus || g.Size != w.Size || g.Serial != w.Serial || g.Model != w.Model ||
			g.Vendor != w.Vendor || g.WWID != w.WWID || len(g.Partitions) != len(w.Partitions) {
			t.Errorf("disk %d:\n got %+v\nwant %+v", i, g, w)
			continue
		}
		for j, p := range g.Partitions {
			wp := w.Partitions[j]
			if p.Name != wp.Name || p.Number != wp.Number || p.Start != wp.Start || p.Size != wp.Size {
				t.Errorf("%s partition %d: got %+v want %+v", g.Name, j, p, wp)
			}
		}
	}
	buses := map[string]bool{}
	for _, g := range got {
		buses[g.Bus] = true
	}
	for _, b := range []string{"virtio-blk", "virtio-scsi", "sata", "nvme", "usb"} {
		if !buses[b] {
			t.Errorf("capture has no %s disk", b)
		}
	}
}

func TestScanReportsOpenErrorsPerDisk(t *testing.T) {
	data, _ := os.ReadFile("testdata/qemu-five-buses.txtar")
	got, err := Scan(ParseCapture(data), func(name string) (Device, error) {
		if name == "vda" {
			return nil, errors.New("permission denied")
		}
		return zeros(name)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		if d.Name == "vda" && (d.Content != Unknown || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "permission denied")) {
			t.Errorf("vda = %+v, want unknown content and the open error", d)
		}
		if d.Name == "vdb" && (d.Content != Blank || len(d.Errors) != 0) {
			t.Errorf("vdb = %+v: one disk's error must not touch another", d)
		}
	}
}

func TestBusOf(t *testing.T) {
	for link, want := range map[string]string{
		"../devices/pci0000:00/0000:00:02.0/virtio1/block/vda":                                       "virtio-blk",
		"../devices/pci0000:00/0000:00:03.0/virtio2/host0/target0:0:0/0:0:0:0/block/sda":             "virtio-scsi",
		"../devices/pci0000:00/0000:00:04.0/ata1/host1/target1:0:0/1:0:0:0/block/sdb":                "sata",
		"../devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1":                                      "nvme",
		"../devices/pci0000:00/0000:00:06.0/usb2/2-1/2-1:1.0/host13/target13:0:0/13:0:0:0/block/sdc": "usb",
		"../devices/platform/fe320000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0":                     "mmc",
		"../devices/virtual/block/loop0":                                                             "virtual",
		"":                                                                                           "unknown",
	} {
		if got := busOf(link); got != want {
			t.Errorf("busOf(%s) = %s, want %s", link, got, want)
		}
	}
}

func TestRecorderRoundTripsBinary(t *testing.T) {
	live := Capture{"file:block/sda/device/vpd_pg80": "", "dir:block": "sda\n", "link:block/sda": "../x\n"}
	vpd := []byte{0, 0x80, 0, 4, 'S', 'N', '1', 0}
	live["file64:block/sda/device/vpd_pg80"] = "AIAABFNOMQA=\n"
	r := NewRecorder(live)
	b, err := r.ReadFile("block/sda/device/vpd_pg80")
	if err != nil || !bytes.Equal(b, vpd) {
		t.Fatalf("ReadFile = %v, %v", b, err)
	}
	r.ReadDir("block")
	r.ReadLink("block/sda")
	replay := ParseCapture(r.Archive())
	if b, _ := replay.ReadFile("block/sda/device/vpd_pg80"); !bytes.Equal(b, vpd) {
		t.Errorf("binary attribute replayed as %v, want %v", b, vpd)
	}
	if n, _ := replay.ReadDir("block"); len(n) != 1 || n[0] != "sda" {
		t.Errorf("dir replayed as %v", n)
	}
	if l, _ := replay.ReadLink("block/sda"); l != "../x" {
		t.Errorf("link replayed as %q", l)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %s, want %s", n, got, want)
		}
	}
}
