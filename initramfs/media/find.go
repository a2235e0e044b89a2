package media

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
)

// ErrNoMedia means no disk carries passeur's marker.
var ErrNoMedia = errors.New("no install media (no FAT filesystem with " + medialayout.Marker + ")")

// Failures of the install media while passeur writes it.
var (
	ErrFull     = errors.New("install media full")
	ErrReadOnly = errors.New("install media is read-only")
	ErrIO       = errors.New("install media failed (removed?)")
)

// Reader reads a filesystem, read-only, by its device and type
// (roles.MountReader in the rescue).
type Reader interface {
	Files(dev, fsType string) (fs.FS, error)
}

// Is reads the filesystem dev of type typ and tells whether it is install
// media: a FAT filesystem carrying passeur's marker.
func Is(r Reader, dev, typ string) (fs.FS, bool, error) {
	if typ != "vfat" {
		return nil, false, nil
	}
	files, err := r.Files(dev, typ)
	if err != nil {
		return nil, false, err
	}
	_, err = fs.Stat(files, medialayout.Marker)
	return files, err == nil, nil
}

// Find returns the device and the files of the install media, which must
// be one: two keys would make "the backup goes to the key" a guess.
func Find(disks []inventory.Disk, r Reader) (string, fs.FS, error) {
	var found []fs.FS
	var where []string
	try := func(dev string, fsys *fsprobe.FS) {
		if fsys == nil {
			return
		}
		if files, marked, err := Is(r, dev, fsys.Type); err == nil && marked {
			found = append(found, files)
			where = append(where, dev)
		}
	}
	for _, d := range disks {
		try(d.Path, d.FS)
		for _, p := range d.Partitions {
			try(p.Path, p.FS)
		}
	}
	switch len(found) {
	case 0:
		return "", nil, ErrNoMedia
	case 1:
		return where[0], found[0], nil
	}
	return "", nil, fmt.Errorf("more than one install media: %v", where)
}

// Failure names err as a failure of the install media (full, read-only,
// failing) when it is one, and returns other errors as they are.
func Failure(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrFull), errors.Is(err, ErrReadOnly), errors.Is(err, ErrIO):
		return err
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", ErrFull, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case errors.Is(err, syscall.EIO), errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO):
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return err
}
