package staging

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/mountinfo"
)

// TestAttach: the rescue attaches the staging area passeur.staged= names
// only when its folder and image are a plain folder and a regular file of
// a sane size on the filesystem of that UUID; every refusal is named and
// leaves the volume's bytes as they were (it is checked on a read-only
// mount first). The image attached is the one staged, on a loop device,
// and Close gives the volume back.
func TestAttach(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a filesystem and attaches loop devices: needs root")
	}
	const uuid = "7d0c5a52-86e5-4b5c-8d8c-2f6b1e0a9c01"
	dir := t.TempDir()
	fsImg, vol := filepath.Join(dir, "vol.img"), filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o755)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("mkfs.ext4", "-q", "-L", "rec-1", "-U", uuid, fsImg, "160M")
	dev := run("losetup", "-f", "--show", fsImg)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })

	run("mount", dev, vol)
	in := filepath.Join(dir, "in")
	os.MkdirAll(filepath.Join(in, "releases"), 0o755)
	os.MkdirAll(filepath.Join(vol, "good"), 0o755)
	if err := Make(filepath.Join(vol, "good", ImageFile), MinImage, in, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/", filepath.Join(vol, "linkdir"))
	os.MkdirAll(filepath.Join(vol, "linkimg"), 0o755)
	os.Symlink("../good/"+ImageFile, filepath.Join(vol, "linkimg", ImageFile))
	os.MkdirAll(filepath.Join(vol, "small"), 0o755)
	os.WriteFile(filepath.Join(vol, "small", ImageFile), make([]byte, 1<<20), 0o644)
	os.MkdirAll(filepath.Join(vol, "fifo"), 0o755)
	syscall.Mkfifo(filepath.Join(vol, "fifo", ImageFile), 0o644)
	run("umount", vol)
	sum := run("sha256sum", fsImg)

	disks := []inventory.Disk{{Name: filepath.Base(dev), Path: dev, FS: &fsprobe.FS{Type: "ext4", Label: "rec-1", UUID: uuid}}}
	at := filepath.Join(dir, "staged")
	for _, c := range []struct {
		name  string
		disks []inventory.Disk
		dir   string
		want  error
	}{
		{"no such UUID", nil, "good", ErrNoPlace},
		{"a filesystem the rescue does not write", []inventory.Disk{{Path: dev, FS: &fsprobe.FS{Type: "squashfs", UUID: uuid}}}, "good", ErrNoPlace},
		{"no folder", disks, "missing", ErrBadImage},
		{"the folder a link out of the volume", disks, "linkdir", ErrBadImage},
		{"the image a link", disks, "linkimg", ErrBadImage},
		{"an image of 1 MiB", disks, "small", ErrBadImage},
		{"the image a FIFO", disks, "fifo", ErrBadImage},
	} {
		a, err := Attach(c.disks, config.Staged{UUID: uuid, Dir: c.dir}, at)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if a != nil {
			a.Close()
		}
		if p, _ := mountinfo.Whole(dev); p != "" {
			t.Fatalf("%s: the volume stayed mounted on %s", c.name, p)
		}
		if got := run("sha256sum", fsImg); got != sum {
			t.Errorf("%s: the refusal wrote on the volume", c.name)
		}
	}

	a, err := Attach(disks, config.Staged{UUID: uuid, Dir: "good"}, at)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != MinImage || !strings.HasPrefix(a.Loop.Path, "/dev/loop") {
		t.Errorf("attached %+v", a)
	}
	if label := run("blkid", "-o", "value", "-s", "LABEL", a.Loop.Path); label != Label {
		t.Errorf("the loop device holds %q, want the staging image's label %s", label, Label)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if p, _ := mountinfo.Whole(dev); p != "" {
		t.Errorf("the volume is still mounted on %s after Close", p)
	}

	// A journal to replay (a box cut right after it staged) is looked at
	// again once replayed: the folder missing is still refused by name.
	if replays(dev, "ext4") {
		t.Error("a clean ext4 is said to need its journal replayed")
	}
	run("debugfs", "-w", "-R", "feature needs_recovery", dev)
	if !replays(dev, "ext4") {
		t.Fatal("an ext4 needing recovery is said clean")
	}
	if _, err := Attach(disks, config.Staged{UUID: uuid, Dir: "missing"}, at); !errors.Is(err, ErrBadImage) {
		t.Errorf("no folder, journal replayed: %v, want ErrBadImage", err)
	}
	if replays(dev, "ext4") {
		t.Error("the refusal did not look again on the read-write mount: the journal was not replayed")
	}
	if p, _ := mountinfo.Whole(dev); p != "" {
		t.Errorf("the volume stayed mounted on %s", p)
	}
}
