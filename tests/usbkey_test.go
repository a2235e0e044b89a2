package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/usbkey"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// TestUSBKeyUnderOVMF makes the USB key image (passeur key -image), boots
// the appliance of fixture (a) with it under OVMF from a usb-storage
// device, as a technician would: systemd-boot starts the default entry,
// the migration runs (unattended from the key's config), v8 reports the
// expected health; afterwards the key's FAT32 is clean and holds the
// verified backup and the run's console log.
func TestUSBKeyUnderOVMF(t *testing.T) {
	r := camrec8(t)
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 27})
	img := filepath.Join(t.TempDir(), "key.img")
	c := usbkey.Content{Loader: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi", Kernel: art.Kernel, Initramfs: art.Initrd,
		Cmdline: art.Board.Kernel.Cmdline, Releases: []string{r.dir}, Config: []byte(`{"unattended": true}`)}
	if err := usbkey.Image(img, 768<<20, c); err != nil {
		t.Fatal(err)
	}
	data := fixtureData(a)
	before := hashes(t, data)
	vm := qemu.Test(t, qemu.Options{Board: art.Board, UEFI: true,
		Disks: append(a.Disks(), qemu.Disk{Path: img, Bus: qemu.USB, Serial: "PASSEUR-KEY"})})
	ev, err := vm.WaitEvent("health", 8*bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var got camrec.Report
	if err := ev.Decode(&got); err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	run := collect(vm)
	if len(run.errors) > 0 {
		t.Errorf("errors: %v", run.errors)
	}
	if !reflect.DeepEqual(got, a.Expected) {
		t.Errorf("health report\n got %+v\nwant %+v", got, a.Expected)
	}
	var cfg struct{ Mode string }
	run.decode(t, "config", &cfg)
	if cfg.Mode != "migrate" {
		t.Errorf("mode %q: the rescue system was not started by the key's default entry", cfg.Mode)
	}
	sameHashes(t, "migration from the USB key", before, hashes(t, data))

	part := filepath.Join(t.TempDir(), "part.img")
	if out, err := exec.Command("dd", "if="+img, "of="+part, "bs=1M", "skip=1", "count=766", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	fsckClean(t, part)
	tree := keyTree(t, part)
	runs := runDirs(t, tree, "camrec-a")
	if len(runs) != 1 || !backup.IsComplete(runs[0]) {
		t.Fatalf("runs on the key %v: want one, complete", runs)
	}
	if err := sha256sumOK(runs[0]); err != nil {
		t.Error(err)
	}
	recs, err := journal.Read(filepath.Join(runs[0], journal.File))
	if err != nil || len(recs) == 0 {
		t.Fatalf("journal: %v", err)
	}
	if _, ok := journal.DoneIn(recs, "boot"); !ok {
		t.Error("the journal on the key does not record the boot of the new system")
	}
	if log := fileSHA(t, filepath.Join(runs[0], "console.log")); log == "" {
		t.Error("no console log")
	}
}

// TestKeyWithoutRelease boots fixture (a) in migrate mode with a key that
// holds no release and names no repository: unattended, the refusal and
// the choices left are on the console, nothing written to any disk; then
// attended, the operator picks "back up only" and gets a complete,
// verified backup made with the rescue image's own profile of camrec.
func TestKeyWithoutRelease(t *testing.T) {
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 29})
	img := filepath.Join(t.TempDir(), "key.img")
	if err := fixture.Key(img, 256<<20, 32, nil, map[string]string{roles.MediaMarker: roles.MarkerData}); err != nil {
		t.Fatal(err)
	}
	key := qemu.Disk{Path: img, Bus: qemu.USB, Serial: "PASSEUR-KEY"}
	disks := append(a.Disks(), key)
	before := hashes(t, a.Disks())

	vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: disks,
		Cmdline: "passeur.unattended=yes passeur.mode=migrate"})
	if _, err := vm.WaitEvent("idle", 2*bootTimeout); err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	run := collect(vm)
	if msg := strings.Join(run.errors, "\n"); !strings.Contains(msg, "no release on the install media and no repository configured") {
		t.Errorf("errors %q: want the refusal", msg)
	}
	for _, want := range []string{"nothing was written", "passeur.mode=backup", "passeur.mode=recover", "passeur.mode=shell", `"repo" in passeur/config.json`} {
		if !strings.Contains(vm.Console(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if run.event("choices") == nil || run.event("journal") != nil {
		t.Error("no choices event, or a run began")
	}
	sameHashes(t, "migrate with no release", before, hashes(t, a.Disks()))
	if out, err := fixture.Run("", "mdir", "-i", img, "::/"+backup.Root); err == nil {
		t.Errorf("a %s folder appeared on the key:\n%s", backup.Root, out)
	}

	vm = qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: disks, Cmdline: "passeur.mode=migrate"})
	if _, err := vm.Expect(regexp.MustCompile(`What now\?[^\n]*\n(.*\n){3}\s*q\) stop here`), 2*bootTimeout); err != nil {
		t.Fatal(err)
	}
	if err := vm.Type("1\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitAny(2*bootTimeout, "backup", "idle"); err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	run = collect(vm)
	if run.event("backup") == nil {
		t.Fatalf("no backup after choosing it: errors %v", run.errors)
	}
	sameHashes(t, "backup chosen after the refusal", before, hashes(t, a.Disks()))
	runs := runDirs(t, keyTree(t, img), "camrec-a")
	if len(runs) != 1 {
		t.Fatalf("run folders %v, want one", runs)
	}
	if _, err := os.Stat(filepath.Join(runs[0], backup.CompleteFile)); err != nil {
		t.Errorf("backup not complete: %v", err)
	}
	if err := sha256sumOK(runs[0]); err != nil {
		t.Error(err)
	}
	journalText, _ := os.ReadFile(filepath.Join(runs[0], journal.File))
	if !strings.Contains(string(journalText), "camrec (no release: the rescue image's profile)") {
		t.Errorf("journal header does not name the profile:\n%.400s", journalText)
	}
	fsckClean(t, img)
}
