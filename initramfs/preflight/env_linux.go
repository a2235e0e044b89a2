package preflight

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/passeur/passeur/initramfs/roles"
	"golang.org/x/sys/unix"
)

// MountEnv answers the checks on the rescue system, through the read-only
// mounts of a roles.MountReader.
type MountEnv struct {
	Reader *roles.MountReader
	// FSType gives the filesystem type of a device, for mounting it.
	FSType func(dev string) string
}

// MediaFree is the free space of the media's filesystem.
func (e MountEnv) MediaFree(dev string) (int64, error) {
	p, err := e.Reader.MountPoint(dev, e.FSType(dev))
	if err != nil {
		return 0, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dev, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// TreeSize adds up the sizes of the files under p; a missing p is 0.
func (e MountEnv) TreeSize(sys *roles.Assignment, p string) (int64, error) {
	files, err := sys.Files(e.Reader)
	if err != nil {
		return 0, err
	}
	var n int64
	err = fs.WalkDir(files, strings.TrimPrefix(path.Clean(p), "/"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// ReadVolume mounts the volume read-only and lists its top folder.
func (e MountEnv) ReadVolume(v roles.Volume) error {
	files, err := e.Reader.Files(v.Device, v.FSType)
	if err != nil {
		return err
	}
	_, err = fs.ReadDir(files, ".")
	return err
}

// Busy releases the rescue system's own read-only mounts, then opens the
// disk exclusively: the kernel refuses while any of its partitions is
// mounted or held.
func (e MountEnv) Busy(dev string) error {
	if err := e.Reader.Close(); err != nil {
		return err
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s is in use (exclusive open: %w)", dev, err)
	}
	return unix.Close(fd)
}
