package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/usbkey"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// TestKeyUnderOVMF migrates fixture (a) from a USB key under OVMF, the key
// made either way a technician makes one (below); the default run takes
// one of the two in turn, the long run both.
func TestKeyUnderOVMF(t *testing.T) {
	cases := []struct {
		name string
		run  func(*testing.T)
	}{{"image", keyImageUnderOVMF}, {"prepared", preparedKeyUnderOVMF}}
	for _, c := range sample(t, 1, cases) {
		t.Run(c.name, c.run)
	}
}

// keyImageUnderOVMF makes the USB key image (passeur key -image), boots
// the appliance of fixture (a) with it under OVMF from a usb-storage
// device, as a technician would: systemd-boot starts the default entry,
// the migration runs (unattended from the key's config), v8 reports the
// expected health; afterwards the key's FAT32 is clean and holds the
// verified backup and the run's console log.
func keyImageUnderOVMF(t *testing.T) {
	r := camrec8(t)
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 27})
	img := filepath.Join(t.TempDir(), "key.img")
	if err := usbkey.Image(img, 768<<20, keyContent(t, art, r)); err != nil {
		t.Fatal(err)
	}
	migrateFromKeyUnderOVMF(t, a, img)
	checkKeyAfter(t, img, 1<<20, 766<<20)
}

// preparedKeyUnderOVMF is the same from a key the technician already
// had: an MBR with one FAT32 partition (sfdisk, mkfs.vfat) holding their
// own files, onto which the key's tree was copied (passeur key -dir
// prepares a mounted key; the host here cannot mount FAT, so it prepares a
// folder and mtools copies it, as cp would). The key's own files survive.
func preparedKeyUnderOVMF(t *testing.T) {
	r := camrec8(t)
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 31})
	dir := t.TempDir()
	img := filepath.Join(dir, "key.img")
	const size, start = 2 << 30, 1 << 20
	if err := fixture.Blank(img, size); err != nil {
		t.Fatal(err)
	}
	if _, err := fixture.Run("label: dos\nstart=2048, type=c, bootable\n", "sfdisk", "-q", img); err != nil {
		t.Fatal(err)
	}
	if _, err := fixture.Run("", "mkfs.vfat", "-F", "32", "-n", "MYKEY", "--offset", fmt.Sprint(start/512), img, fmt.Sprint((size-start)/1024)); err != nil {
		t.Fatal(err)
	}
	on := img + "@@" + fmt.Sprint(start)
	own := filepath.Join(dir, "notes.txt")
	os.WriteFile(own, []byte("the technician's own file\n"), 0o644)
	if _, err := fixture.Run("", "mcopy", "-i", on, own, "::/notes.txt"); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	if err := usbkey.Prepare(tree, keyContent(t, art, r)); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(tree)
	args := []string{"-s", "-i", on}
	for _, e := range ents {
		args = append(args, filepath.Join(tree, e.Name()))
	}
	if _, err := fixture.Run("", "mcopy", append(args, "::/")...); err != nil {
		t.Fatal(err)
	}
	migrateFromKeyUnderOVMF(t, a, img)
	part := checkKeyAfter(t, img, start, size-start)
	back := filepath.Join(dir, "notes-after.txt")
	if _, err := fixture.Run("", "mcopy", "-n", "-i", part, "::/notes.txt", back); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); string(got) != "the technician's own file\n" {
		t.Errorf("the key's own file after the migration: %q", got)
	}
}

// keyContent is the key's tree for the tests: the built rescue image,
// camrec 8, unattended.
func keyContent(t *testing.T, art qemu.Artifacts, r camrecRelease) usbkey.Content {
	pk, err := sign.LoadPublicKey(r.pub)
	if err != nil {
		t.Fatal(err)
	}
	return usbkey.Content{Loader: usbkey.SystemdBoot, Kernel: art.Kernel, Initramfs: art.Initrd, Trusted: []minisign.PublicKey{pk},
		Cmdline: art.Board.Kernel.Cmdline, Releases: []string{r.dir}, Config: []byte(`{"unattended": true}`)}
}

// migrateFromKeyUnderOVMF boots appliance a under OVMF with the key image
// on usb-storage and checks the migration: v8's health as expected, the
// default entry's mode, the data disks unchanged.
func migrateFromKeyUnderOVMF(t *testing.T, a *camrec.Appliance, key string) {
	t.Helper()
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	data := fixtureData(a)
	before := hashes(t, data)
	vm := qemu.Test(t, qemu.Options{Board: art.Board, UEFI: true,
		Disks: append(a.Disks(), qemu.Disk{Path: key, Bus: qemu.USB, Serial: "PASSEUR-KEY"})})
	got := reportOf(t, vm, 8*bootTimeout)
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
}

// checkKeyAfter extracts the key's FAT partition (size bytes at start)
// after a migration of fixture (a), checks it is fsck clean and holds one
// complete, verified backup, the journal with the boot done and the
// console log, and returns the partition's image.
func checkKeyAfter(t *testing.T, img string, start, size int64) string {
	t.Helper()
	part := filepath.Join(t.TempDir(), "part.img")
	if out, err := exec.Command("dd", "if="+img, "of="+part, "bs=1M", fmt.Sprintf("skip=%d", start>>20), fmt.Sprintf("count=%d", size>>20),
		"conv=sparse", "status=none").CombinedOutput(); err != nil {
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
	if _, ok := journal.DoneIn(recs, steps.Boot); !ok {
		t.Error("the journal on the key does not record the boot of the new system")
	}
	if st, err := os.Stat(filepath.Join(runs[0], "console.log")); err != nil || st.Size() == 0 {
		t.Errorf("no console log: %v", err)
	}
	return part
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
	if err := fixture.Key(img, 256<<20, 32, nil, map[string]string{medialayout.Marker: medialayout.MarkerData}); err != nil {
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
	if out, err := fixture.Run("", "mdir", "-i", img, "::/"+medialayout.BackupDir); err == nil {
		t.Errorf("a %s folder appeared on the key:\n%s", medialayout.BackupDir, out)
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
