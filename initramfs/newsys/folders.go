package newsys

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Folders is a Mounter for a host that has no loop devices to give: the
// filesystem at each extent of a disk is a folder under Root, named after
// the disk and the extent, moved onto the mount point while it is mounted
// and back when it is unmounted. It checks what the kernel would: the
// mount point exists and is empty, an extent is mounted once at a time.
// Read-only is not enforced.
type Folders struct{ Root string }

// Mount implements Mounter.
func (f Folders) Mount(disk string, start, size int64, fstype, dir string, readOnly bool) (func() error, error) {
	src := filepath.Join(f.Root, fmt.Sprintf("%s@%d+%d.%s", strings.ReplaceAll(strings.Trim(disk, "/"), "/", "_"), start, size, fstype))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("mount on %s: busy (not empty)", dir)
	}
	if err := os.Remove(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(src, dir); err != nil {
		os.Mkdir(dir, 0o755)
		return nil, err
	}
	return func() error {
		if err := os.Rename(dir, src); err != nil {
			return err
		}
		return os.Mkdir(dir, 0o755)
	}, nil
}
