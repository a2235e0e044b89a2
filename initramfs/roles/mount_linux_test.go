package roles

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilesOfHeldVolume: a filesystem already mounted read-write (the
// rescue holds a staging area's volume so) is read through a read-only
// bind of its mount, which writes nothing and goes at Close.
func TestFilesOfHeldVolume(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a filesystem: needs root")
	}
	dir := t.TempDir()
	img, held := filepath.Join(dir, "vol.img"), filepath.Join(dir, "held")
	os.Mkdir(held, 0o755)
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "rec-1", img, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mount", dev, held).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", held).Run() })
	os.WriteFile(filepath.Join(held, "index.db"), []byte("recordings"), 0o644)

	r := &MountReader{Dir: filepath.Join(dir, "ro")}
	files, err := r.Files(dev, "ext4")
	if err != nil {
		t.Fatal(err)
	}
	if data, err := fs.ReadFile(files, "index.db"); err != nil || string(data) != "recordings" {
		t.Errorf("index.db through the bind: %q %v", data, err)
	}
	p, _ := r.MountPoint(dev, "ext4")
	if err := os.WriteFile(filepath.Join(p, "written"), nil, 0o644); err == nil {
		t.Error("the bind of a held volume is writable")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(held, "index.db")); err != nil {
		t.Errorf("the held mount went with the bind: %v", err)
	}
}
