package newsys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sdBoot is a systemd-boot binary as far as systemdBoot reads it.
const sdBoot = "MZ\x00\x00 #### LoaderInfo: systemd-boot 252.39-1~deb12u2 #### \x00"

var defaultFree, defaultWrite = espFree, writeFile

func TestAddRescue(t *testing.T) {
	esp := t.TempDir()
	if err := AddRescue(esp, []byte("k"), []byte("i"), "console=ttyS0"); !errors.Is(err, ErrNoLoader) {
		t.Errorf("no loader/entries: %v, want ErrNoLoader", err)
	}
	os.MkdirAll(filepath.Join(esp, "loader/entries"), 0o755)
	os.WriteFile(filepath.Join(esp, "loader/entries/camrec.conf"), []byte("linux /camrec/vmlinuz\n"), 0o644)
	if err := AddRescue(esp, []byte("k"), []byte("i"), "console=ttyS0"); !errors.Is(err, ErrNoLoader) {
		t.Errorf("no loader binary: %v, want ErrNoLoader", err)
	}
	os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ GNU GRUB  version 2.06"), 0o644)
	if err := AddRescue(esp, []byte("k"), []byte("i"), "console=ttyS0"); !errors.Is(err, ErrNoLoader) {
		t.Errorf("GRUB as the loader: %v, want ErrNoLoader", err)
	}
	if _, err := os.Stat(filepath.Join(esp, RescueFolder)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused AddRescue wrote %s: %v", RescueFolder, err)
	}
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte(sdBoot), 0o644)
	if err := AddRescue(esp, []byte("k"), []byte("i"), "a\nb"); err == nil {
		t.Error("a command line with a line break was taken")
	}
	// An earlier attempt, cut as it wrote, left a file: taken off first.
	os.MkdirAll(filepath.Join(esp, RescueFolder), 0o755)
	os.WriteFile(filepath.Join(esp, RescueFolder, "vmlinuz.tmp-1"), []byte("half a kernel"), 0o644)
	if err := AddRescue(esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0 passeur.staged=x/passeur-staging"); err != nil {
		t.Fatal(err)
	}
	entry, _ := os.ReadFile(filepath.Join(esp, "loader/entries", RescueEntry))
	for _, line := range []string{"linux /" + RescueFolder + "/vmlinuz", "initrd /" + RescueFolder + "/initramfs.cpio.zst", "options console=ttyS0 passeur.staged=x/passeur-staging"} {
		if !strings.Contains(string(entry), line+"\n") {
			t.Errorf("the entry lacks %q:\n%s", line, entry)
		}
	}
	if k, _ := os.ReadFile(filepath.Join(esp, RescueFolder, "vmlinuz")); string(k) != "kernel" {
		t.Errorf("kernel %q", k)
	}
	if ents, _ := os.ReadDir(filepath.Join(esp, RescueFolder)); len(ents) != 2 {
		t.Errorf("%s holds %v", RescueFolder, ents)
	}
	// No room: nothing of it stays.
	espFree = func(string) (int64, error) { return 1 << 20, nil }
	err := AddRescue(esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0")
	espFree = defaultFree
	if !errors.Is(err, ErrESPFull) {
		t.Errorf("1 MiB free: %v, want ErrESPFull", err)
	}
	if _, err := os.Stat(filepath.Join(esp, "loader/entries", RescueEntry)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a refusal the entry is there: %v", err)
	}
	// The entry's write fails, its kernel and initramfs written: taken off.
	writeFile = func(p string, data []byte, perm os.FileMode) error {
		if filepath.Base(p) == RescueEntry {
			return errors.New("I/O error")
		}
		return defaultWrite(p, data, perm)
	}
	err = AddRescue(esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0")
	writeFile = defaultWrite
	if _, serr := os.Stat(filepath.Join(esp, RescueFolder)); err == nil || !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the entry's write failed: %v, and %s: %v", err, RescueFolder, serr)
	}
	if err := AddRescue(esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveRescue(esp); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(esp, "loader/entries"))
	if _, err := os.Stat(filepath.Join(esp, RescueFolder)); len(ents) != 1 || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after RemoveRescue: entries %v, %s: %v", ents, RescueFolder, err)
	}
	if err := RemoveRescue(esp); err != nil {
		t.Errorf("removed twice: %v", err)
	}
}
