package roles

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
)

func TestFindMedia(t *testing.T) {
	disks, r := smallLayout()
	_, files, err := media.Find(disks, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(files, medialayout.Marker); err != nil {
		t.Errorf("media files lack the marker: %v", err)
	}
	second := append(disks, inventory.Disk{Path: "/dev/sdc", FS: &fsprobe.FS{Type: "vfat"}})
	r["/dev/sdc"] = r["/dev/sda1"]
	if _, _, err := media.Find(second, r); err == nil || errors.Is(err, media.ErrNoMedia) {
		t.Errorf("two keys: %v, want an error naming both", err)
	}
	delete(r, "/dev/sda1")
	delete(r, "/dev/sdc")
	if _, _, err := media.Find(disks, r); !errors.Is(err, media.ErrNoMedia) {
		t.Errorf("no marker: %v, want ErrNoMedia", err)
	}
}
