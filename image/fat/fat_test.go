package fat

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// shortSizes are sizes at which go-diskfs v1.9.4 lays out a FAT one or two
// entries short of its clusters: the partitions of 66 MiB, 2 GiB (the
// default of passeur key), 3 GiB + 1 MiB and 32 GiB keys.
var shortSizes = []int64{64 << 20, 2046 << 20, 3071 << 20, 32766 << 20}

// TestMakeWhereGoDiskfsFATIsShort makes a filesystem at each size where
// go-diskfs's own layout is refused by fsck.fat, and checks that Make's is
// clean and readable: Make once panicked in Fixup at 2046 MiB.
func TestMakeWhereGoDiskfsFATIsShort(t *testing.T) {
	if _, err := exec.LookPath("fsck.vfat"); err != nil {
		t.Skip("fsck.vfat not installed (build.sh installs it)")
	}
	for _, size := range shortSizes {
		t.Run(fmt.Sprintf("%dMiB", size>>20), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fat.img")
			files := []File{{Path: "/Backup/host/a.txt", Data: []byte("backed up\n")}, {Path: "/passeur/media.json", Data: []byte(`{"format":1}`)}}
			if err := Make(img, size, "PASSEUR", files, []string{"/releases"}, time.Unix(1767225600, 0)); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("fsck.vfat", "-n", img).CombinedOutput(); err != nil {
				t.Errorf("fsck.vfat -n: %v\n%s", err, out)
			}
			if out, err := exec.Command("mtype", "-i", img, "::/Backup/host/a.txt").CombinedOutput(); err != nil || string(out) != "backed up\n" {
				t.Errorf("mtype: %v\n%s", err, out)
			}
			if st, err := os.Stat(img); err != nil || st.Size() != size {
				t.Errorf("image size: %v, %v; want %d", st.Size(), err, size)
			}
		})
	}
}

// TestFixupRefusesShortFAT gives Fixup what go-diskfs lays out at 2046 MiB,
// a FAT too short for its clusters: a named error, not an index out of
// range.
func TestFixupRefusesShortFAT(t *testing.T) {
	img := filepath.Join(t.TempDir(), "fat.img")
	st, err := file.CreateFromPath(img, 2046<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := fat32.Create(st, 2046<<20, 0, 512, "PASSEUR", true); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Fixup(f); !errors.Is(err, ErrGeometry) {
		t.Errorf("Fixup of a short FAT = %v, want ErrGeometry", err)
	}
}

// TestFixupRefusesImpossibleGeometry damages one field of a good boot
// sector at a time: each is refused by name.
func TestFixupRefusesImpossibleGeometry(t *testing.T) {
	img := filepath.Join(t.TempDir(), "fat.img")
	if err := Make(img, 40<<20, "PASSEUR", nil, nil, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(b []byte){
		"sector size 0":           func(b []byte) { le.PutUint16(b[11:], 0) },
		"3 sectors a cluster":     func(b []byte) { b[13] = 3 },
		"no FAT":                  func(b []byte) { b[16] = 0 },
		"FAT larger than disk":    func(b []byte) { le.PutUint32(b[36:], 0xffffffff) },
		"FAT of one sector":       func(b []byte) { le.PutUint32(b[36:], 1) },
		"root past the clusters":  func(b []byte) { le.PutUint32(b[44:], 0x0ffffff0) },
		"root at cluster 0":       func(b []byte) { le.PutUint32(b[44:], 0) },
		"FSInfo past reserved":    func(b []byte) { le.PutUint16(b[48:], 0xffff) },
		"root chain loops":        func(b []byte) { le.PutUint32(b[32*512+4*2:], 2) },
		"root chain to cluster 1": func(b []byte) { le.PutUint32(b[32*512+4*2:], 1) },
	} {
		b := append([]byte(nil), good...)
		damage(b)
		p := filepath.Join(t.TempDir(), "bad.img")
		os.WriteFile(p, b, 0o644)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := Fixup(f); !errors.Is(err, ErrGeometry) {
			t.Errorf("%s: Fixup = %v, want ErrGeometry", name, err)
		}
		f.Close()
	}
}

// TestMakeRefusesSize: a size no FAT32 filesystem fits is a named error.
func TestMakeRefusesSize(t *testing.T) {
	for _, size := range []int64{8 << 10, 300 << 30, 3 << 40} {
		img := filepath.Join(t.TempDir(), "fat.img")
		if err := Make(img, size, "PASSEUR", nil, nil, time.Unix(0, 0)); !errors.Is(err, ErrSize) {
			t.Errorf("Make of %d bytes = %v, want ErrSize", size, err)
		}
	}
}
