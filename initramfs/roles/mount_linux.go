package roles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MountReader reads filesystems by mounting them read-only under Dir,
// without replaying journals (ext3/4 noload, xfs norecovery), so that
// reading writes nothing to the disk. Close unmounts them all.
type MountReader struct {
	Dir     string
	mounted map[string]string // device -> mount point
}

// readOnlyOptions are the mount data that keep each filesystem from writing.
var readOnlyOptions = map[string]string{"ext3": "noload", "ext4": "noload", "xfs": "norecovery"}

// Files mounts dev (once) and returns its files.
func (m *MountReader) Files(dev, typ string) (fs.FS, error) {
	if m.mounted == nil {
		m.mounted = map[string]string{}
	}
	if p, ok := m.mounted[dev]; ok {
		return os.DirFS(p), nil
	}
	p := filepath.Join(m.Dir, strings.ReplaceAll(strings.TrimPrefix(dev, "/dev/"), "/", "_"))
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(dev, p, typ, flags, readOnlyOptions[typ]); err != nil {
		return nil, fmt.Errorf("mount %s (%s) read-only: %w", dev, typ, err)
	}
	m.mounted[dev] = p
	return os.DirFS(p), nil
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
	for dev, p := range m.mounted {
		if err := unix.Unmount(p, 0); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", dev, err))
			continue
		}
		os.Remove(p)
		delete(m.mounted, dev)
	}
	return errors.Join(errs...)
}

// Release unmounts dev if Files mounted it, so that it can be mounted
// otherwise (read-write, for the media or the target).
func (m *MountReader) Release(dev string) error {
	p, ok := m.mounted[dev]
	if !ok {
		return nil
	}
	if err := unix.Unmount(p, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dev, err)
	}
	os.Remove(p)
	delete(m.mounted, dev)
	return nil
}
