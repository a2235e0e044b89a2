package builder

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/release"
)

// makeESP makes a FAT32 image of size bytes holding systemd-boot as the
// removable-media loader, the kernel, the initrd and one boot entry.
func makeESP(img string, size int64, e ESP, m *release.Manifest, vmlinuz, initrd, options string, epoch int64) error {
	os.Remove(img)
	st, err := file.CreateFromPath(img, size)
	if err != nil {
		return err
	}
	if err := fillESP(st, size, e, m, vmlinuz, initrd, options, epoch); err != nil {
		st.Close()
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fat.Fixup(f); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	return f.Close()
}

func fillESP(st backend.Storage, size int64, e ESP, m *release.Manifest, vmlinuz, initrd, options string, epoch int64) error {
	fs, err := fat32.Create(st, size, 0, 512, "ESP", true)
	if err != nil {
		return fmt.Errorf("make ESP: %w", err)
	}
	dir := m.Product
	entry := fmt.Sprintf("title %s\nversion %s\nlinux /%s/vmlinuz\ninitrd /%s/initrd.zst\noptions %s\n", e.Title, m.Version, dir, dir, options)
	files := []struct {
		path string
		from string // host file, or
		data string // content
	}{
		{"/EFI/BOOT/BOOTX64.EFI", e.Loader, ""},
		{"/loader/loader.conf", "", "default " + m.Product + ".conf\ntimeout 0\n"},
		{"/loader/entries/" + m.Product + ".conf", "", entry},
		{"/" + dir + "/vmlinuz", vmlinuz, ""},
		{"/" + dir + "/initrd.zst", initrd, ""},
	}
	stamp := time.Unix(epoch, 0).UTC()
	for _, f := range files {
		if err := fs.Mkdir(path.Dir(f.path)); err != nil {
			return fmt.Errorf("ESP: mkdir %s: %w", path.Dir(f.path), err)
		}
		if err := writeFile(fs, f.path, f.from, f.data); err != nil {
			return err
		}
		if err := fs.Chtimes(f.path, stamp, stamp, stamp); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(fs filesystem.FileSystem, p, from, data string) error {
	var src io.Reader
	if from != "" {
		f, err := os.Open(from)
		if err != nil {
			return fmt.Errorf("ESP: %w", err)
		}
		defer f.Close()
		src = f
	} else {
		src = strings.NewReader(data)
	}
	dst, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("ESP: create %s: %w", p, err)
	}
	// Large buffers: go-diskfs FAT writes are slow in small pieces.
	if _, err := io.CopyBuffer(dst, src, make([]byte, 4<<20)); err != nil {
		dst.Close()
		return fmt.Errorf("ESP: write %s: %w", p, err)
	}
	return dst.Close()
}
