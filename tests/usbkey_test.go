package tests

import (
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/passeur/passeur/image/usbkey"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
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
