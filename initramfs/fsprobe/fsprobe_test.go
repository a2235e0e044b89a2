package fsprobe

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// blkid returns what blkid -p says of the image: TYPE, LABEL, UUID.
func blkid(t *testing.T, img string) map[string]string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-o", "export", img).Output()
	if err != nil {
		t.Fatalf("blkid -p %s: %v", img, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func image(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (build.sh installs it)", name)
	}
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func probeFile(t *testing.T, img string) *FS {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	fs, err := Probe(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestAgainstBlkid makes each filesystem with its real mkfs and checks that
// Probe reports what blkid reports.
func TestAgainstBlkid(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
		mkfs []string
	}{
		{"ext4", 64 << 20, []string{"mkfs.ext4", "-q", "-L", "rec-data", "IMG"}},
		{"ext3", 64 << 20, []string{"mkfs.ext3", "-q", "-L", "old", "IMG"}},
		{"ext2", 16 << 20, []string{"mkfs.ext2", "-q", "IMG"}},
		{"vfat32", 64 << 20, []string{"mkfs.vfat", "-F", "32", "-n", "PASSEUR", "IMG"}},
		{"vfat16", 32 << 20, []string{"mkfs.vfat", "-F", "16", "IMG"}},
		{"xfs", 320 << 20, []string{"mkfs.xfs", "-q", "-L", "recordings", "IMG"}},
		{"swap", 16 << 20, []string{"mkswap", "-L", "swp", "IMG"}},
		{"btrfs", 128 << 20, []string{"mkfs.btrfs", "-q", "-L", "bt", "IMG"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := image(t, tc.size)
			args := append([]string(nil), tc.mkfs[1:]...)
			for i, a := range args {
				if a == "IMG" {
					args[i] = img
				}
			}
			run(t, tc.mkfs[0], args...)
			want := blkid(t, img)
			got := probeFile(t, img)
			if got == nil {
				t.Fatalf("Probe found nothing; blkid says %v", want)
			}
			if got.Type == "vfat" && got.Version != want["VERSION"] {
				t.Errorf("FAT version %q, blkid says %q", got.Version, want["VERSION"])
			}
			if got.Type != want["TYPE"] || got.Label != want["LABEL"] || got.UUID != want["UUID"] {
				t.Errorf("Probe = %+v; blkid says TYPE=%s LABEL=%s UUID=%s", got, want["TYPE"], want["LABEL"], want["UUID"])
			}
		})
	}
}

func TestSquashfs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	img := filepath.Join(t.TempDir(), "sq.img")
	run(t, "mksquashfs", dir, img, "-quiet", "-no-progress")
	if got := probeFile(t, img); got == nil || got.Type != "squashfs" {
		t.Errorf("Probe = %+v, want squashfs", got)
	}
}

func TestNothingOnGarbageAndBlank(t *testing.T) {
	garbage := make([]byte, 4<<20)
	rand.New(rand.NewSource(7)).Read(garbage)
	// A boot-sector-like tail must not be enough for FAT.
	garbage[510], garbage[511] = 0x55, 0xAA
	if fs, err := Probe(bytes.NewReader(garbage), int64(len(garbage))); fs != nil || err != nil {
		t.Errorf("garbage probed as %+v, %v", fs, err)
	}
	blank := make([]byte, 1<<20)
	if fs, _ := Probe(bytes.NewReader(blank), int64(len(blank))); fs != nil {
		t.Errorf("blank probed as %+v", fs)
	}
	if fs, _ := Probe(bytes.NewReader(blank[:100]), 100); fs != nil {
		t.Errorf("tiny device probed as %+v", fs)
	}
}

func TestNothingOnPartitionTable(t *testing.T) {
	img := image(t, 8<<20)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader("label: dos\n,4MiB,83\n")
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	if fs := probeFile(t, img); fs != nil {
		t.Errorf("an MBR probed as filesystem %+v", fs)
	}
}
