package roles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/initramfs/tree"
	"golang.org/x/sys/unix"
)

// MountReader reads filesystems by mounting them read-only under Dir,
// without replaying journals (ext3/4 noload, xfs norecovery), so that
// reading writes nothing to the disk, and reading each through a tree
// that never leaves it (see package tree). Close unmounts them all.
type MountReader struct {
	Dir string
	// Limit bounds what one file reads (0: tree.DefaultLimit).
	Limit   int64
	mounted map[string]string   // device -> mount point
	trees   map[string]*tree.FS // device -> its files
}

// readOnlyOptions are the mount data that keep each filesystem from writing.
var readOnlyOptions = map[string]string{"ext3": "noload", "ext4": "noload", "xfs": "norecovery"}

// Files mounts dev (once) and returns its files.
func (m *MountReader) Files(dev, typ string) (fs.FS, error) {
	if m.mounted == nil {
		m.mounted = map[string]string{}
	}
	if t, ok := m.trees[dev]; ok {
		return t, nil
	}
	p := filepath.Join(m.Dir, strings.ReplaceAll(strings.TrimPrefix(dev, "/dev/"), "/", "_"))
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(dev, p, typ, flags, readOnlyOptions[typ]); err != nil {
		return nil, fmt.Errorf("mount %s (%s) read-only: %w", dev, typ, err)
	}
	t, err := tree.Open(p, m.Limit)
	if err != nil {
		unix.Unmount(p, 0)
		return nil, err
	}
	if m.trees == nil {
		m.trees = map[string]*tree.FS{}
	}
	m.mounted[dev], m.trees[dev] = p, t
	return t, nil
}

// unmount closes dev's tree and unmounts it.
func (m *MountReader) unmount(dev string) error {
	if t, ok := m.trees[dev]; ok {
		t.Close()
		delete(m.trees, dev)
	}
	p := m.mounted[dev]
	if err := unix.Unmount(p, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dev, err)
	}
	os.Remove(p)
	delete(m.mounted, dev)
	return nil
}

// MountPoint returns where dev is mounted, mounting it if needed.
func (m *MountReader) MountPoint(dev, typ string) (string, error) {
	if _, err := m.Files(dev, typ); err != nil {
		return "", err
	}
	return m.mounted[dev], nil
}

// Close unmounts everything Files mounted.
func (m *MountReader) Close() error {
	var errs []error
	for dev := range m.mounted {
		errs = append(errs, m.unmount(dev))
	}
	return errors.Join(errs...)
}

// Release unmounts dev if Files mounted it, so that it can be mounted
// otherwise (read-write, for the media or the target).
func (m *MountReader) Release(dev string) error {
	if _, ok := m.mounted[dev]; !ok {
		return nil
	}
	return m.unmount(dev)
}
