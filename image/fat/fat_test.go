package fat

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// TestFixupMakesFsckClean makes FAT32 images with go-diskfs at several
// sizes, with files in nested folders, and checks fsck.fat -n finds nothing
// once fixed up (and that it did find something before).
func TestFixupMakesFsckClean(t *testing.T) {
	if _, err := exec.LookPath("fsck.vfat"); err != nil {
		t.Skip("fsck.vfat not installed (build.sh installs it)")
	}
	for _, mib := range []int64{40, 96, 300} {
		img := filepath.Join(t.TempDir(), "fat.img")
		st, err := file.CreateFromPath(img, mib<<20)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := fat32.Create(st, mib<<20, 0, 512, "PASSEUR", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/EFI/BOOT/BOOTX64.EFI", "/loader/entries/a.conf", "/Backup/host/2026/manifest.sha256", "/top.txt"} {
			if err := fs.Mkdir(filepath.Dir(p)); err != nil {
				t.Fatal(err)
			}
			f, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte(strings.Repeat(p, 1000)))
			f.Close()
		}
		st.Close()
		if out, err := exec.Command("fsck.vfat", "-n", img).CombinedOutput(); err == nil {
			t.Logf("%d MiB: go-diskfs output already clean (fixed upstream?):\n%s", mib, out)
		}
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := Fixup(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if out, err := exec.Command("fsck.vfat", "-n", img).CombinedOutput(); err != nil {
			t.Errorf("%d MiB: fsck.vfat -n after Fixup: %v\n%s", mib, err, out)
		}
		if out, err := exec.Command("mtype", "-i", img, "::/Backup/host/2026/manifest.sha256").Output(); err != nil || !strings.HasPrefix(string(out), "/Backup") {
			t.Errorf("%d MiB: file unreadable by mtools after Fixup: %v", mib, err)
		}
	}
}

func TestFixupRejectsNonFAT32(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	defer f.Close()
	if err := Fixup(f); err == nil {
		t.Error("Fixup of zeros: want an error")
	}
}
