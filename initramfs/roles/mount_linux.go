package roles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/initramfs/mountinfo"
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

// ReadOnlyOptions are the mount data that keep each filesystem from
// writing, with MS_RDONLY: no journal replayed.
var ReadOnlyOptions = map[string]string{"ext3": "noload", "ext4": "noload", "xfs": "norecovery"}

// Files mounts dev (once) and returns its files.
func (m *MountReader) Files(dev, typ string) (fs.FS, error) {
	if m.mounted == nil {
		m.mounted = map[string]string{}
	}
	if t, ok := m.trees[dev]; ok {
		return t, nil
	}
	p := filepath.Join(m.Dir, mountName(dev))
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	if err := mountReadOnly(dev, typ, p); err != nil {
		return nil, err
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

// mountReadOnly mounts dev on p read-only. A filesystem the rescue holds
// mounted read-write already (the data volume a staging area is on) cannot
// be mounted again read-only: it is seen through a read-only bind of its
// mount instead.
func mountReadOnly(dev, typ, p string) error {
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	held, err := mountinfo.Whole(dev)
	if err != nil || held == "" {
		if err := unix.Mount(dev, p, typ, flags, ReadOnlyOptions[typ]); err != nil {
			return fmt.Errorf("mount %s (%s) read-only: %w", dev, typ, err)
		}
		return nil
	}
	if err := unix.Mount(held, p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s (%s, mounted on %s): %w", dev, typ, held, err)
	}
	if err := unix.Mount("", p, "", flags|unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
		unix.Unmount(p, 0)
		return fmt.Errorf("bind %s (%s, mounted on %s) read-only: %w", dev, typ, held, err)
	}
	return nil
}

// Layered mounts upper and lower read-only (once each), then an overlay
// of them, read-only too: two lower layers and no upper one, so that
// nothing can be written through it. It is what an install that lays
// its state over a read-only root sees.
func (m *MountReader) Layered(upper, upperType, lower, lowerType string) (fs.FS, error) {
	key := layeredKey(upper, lower)
	if t, ok := m.trees[key]; ok {
		return t, nil
	}
	// The layers are named in the mount's options, unescaped.
	if strings.ContainsAny(upper+lower, ":,=") {
		return nil, fmt.Errorf("overlay %s over %s: a device name with ':', ',' or '='", upper, lower)
	}
	up, err := m.MountPoint(upper, upperType)
	if err != nil {
		return nil, err
	}
	low, err := m.MountPoint(lower, lowerType)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(m.Dir, "overlay-"+mountName(upper)+"-over-"+mountName(lower))
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	// Both layers lower, no upper one: nothing can be written through it.
	// The state is read, not trusted: the overlay's own metadata in it
	// (redirects, metacopy, index) is not followed.
	opts := "lowerdir=" + up + ":" + low + ",redirect_dir=nofollow,metacopy=off,index=off,xino=off,nfs_export=off"
	if err := unix.Mount("overlay", p, "overlay", flags, opts); err != nil {
		return nil, fmt.Errorf("overlay %s over %s, read-only: %w", upper, lower, err)
	}
	t, err := tree.Open(p, m.Limit)
	if err != nil {
		unix.Unmount(p, 0)
		return nil, err
	}
	m.mounted[key], m.trees[key] = p, t
	return t, nil
}

// SystemPoint is where the installed system's files are mounted (its
// root, or its state laid over it), mounting them if needed.
func (m *MountReader) SystemPoint(a *Assignment) (string, error) {
	if _, err := a.Files(m); err != nil {
		return "", err
	}
	if a.State != "" {
		return m.mounted[layeredKey(a.State, a.Root)], nil
	}
	return m.mounted[a.Root], nil
}

// mountName is dev's mount point's name under Dir.
func mountName(dev string) string {
	return strings.ReplaceAll(strings.TrimPrefix(dev, "/dev/"), "/", "_")
}

// layeredKey names an overlay among the devices MountReader mounted.
func layeredKey(upper, lower string) string { return "overlay " + upper + " over " + lower }

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

// Close unmounts everything Files mounted, the overlays first.
func (m *MountReader) Close() error {
	var errs []error
	for _, overlays := range []bool{true, false} {
		for dev := range m.mounted {
			if strings.HasPrefix(dev, "overlay ") == overlays {
				errs = append(errs, m.unmount(dev))
			}
		}
	}
	return errors.Join(errs...)
}

// Release unmounts dev if Files mounted it, and the overlays it is a
// layer of, so that it can be mounted otherwise (read-write, for the
// media or the target).
func (m *MountReader) Release(dev string) error {
	for key := range m.mounted {
		if strings.HasPrefix(key, "overlay "+dev+" over ") || strings.HasPrefix(key, "overlay ") && strings.HasSuffix(key, " over "+dev) {
			if err := m.unmount(key); err != nil {
				return err
			}
		}
	}
	if _, ok := m.mounted[dev]; !ok {
		return nil
	}
	return m.unmount(dev)
}
