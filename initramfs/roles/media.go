package roles

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/inventory"
)

// ErrNoMedia means no disk carries passeur's marker.
var ErrNoMedia = errors.New("no install media (no FAT filesystem with " + medialayout.Marker + ")")

// mediaFiles reads v and tells whether it is install media: a FAT
// filesystem carrying passeur's marker.
func mediaFiles(r Reader, v volumeFS) (fs.FS, bool, error) {
	if v.typ != "vfat" {
		return nil, false, nil
	}
	files, err := r.Files(v.dev, v.typ)
	if err != nil {
		return nil, false, err
	}
	_, err = fs.Stat(files, medialayout.Marker)
	return files, err == nil, nil
}

// FindMedia returns the files of the install media, which must be one:
// two keys would make "the backup goes to the key" a guess.
func FindMedia(disks []inventory.Disk, r Reader) (fs.FS, error) {
	_, files, err := FindMediaDevice(disks, r)
	return files, err
}

// FindMediaDevice is FindMedia, with the device of the media's filesystem.
func FindMediaDevice(disks []inventory.Disk, r Reader) (string, fs.FS, error) {
	var found []fs.FS
	var where []string
	for _, v := range filesystemsOf(disks) {
		if files, marked, err := mediaFiles(r, v); err == nil && marked {
			found = append(found, files)
			where = append(where, v.dev)
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
