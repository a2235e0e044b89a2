package inventory

import (
	"errors"
	"fmt"
	"strings"

	"github.com/passeur/passeur/initramfs/fsprobe"
)

// Errors of Find.
var (
	ErrNotFound  = errors.New("no device matches")
	ErrAmbiguous = errors.New("more than one device matches")
)

// Find returns the device path a mount spec names among disks: UUID=,
// LABEL=, PARTUUID=, PARTLABEL= (compared as blkid would: UUIDs without
// regard to case), or a /dev path. Two matches are an error, never a guess:
// cloned disks carry the same UUIDs.
func Find(disks []Disk, spec string) (string, error) {
	found := FindAll(disks, spec)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w %s", ErrNotFound, spec)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w %s: %s", ErrAmbiguous, spec, strings.Join(found, ", "))
}

// FindAll returns every device path spec matches (see Find).
func FindAll(disks []Disk, spec string) []string {
	key, val, ok := strings.Cut(spec, "=")
	if !ok {
		if !strings.HasPrefix(spec, "/dev/") {
			return nil
		}
		key, val = "PATH", spec
	}
	fsMatch := func(f *fsprobe.FS) bool {
		switch key {
		case "UUID":
			return f != nil && strings.EqualFold(f.UUID, val)
		case "LABEL":
			return f != nil && f.Label == val
		}
		return false
	}
	var found []string
	for _, d := range disks {
		if fsMatch(d.FS) || (key == "PATH" && d.Path == val) {
			found = append(found, d.Path)
		}
		for _, p := range d.Partitions {
			if fsMatch(p.FS) || (key == "PARTUUID" && strings.EqualFold(p.PartUUID, val)) ||
				(key == "PARTLABEL" && p.PartLabel == val) || (key == "PATH" && p.Path == val) {
				found = append(found, p.Path)
			}
		}
	}
	return found
}

// TypeOf returns the type of the filesystem on the device at path, or "".
func TypeOf(disks []Disk, path string) string {
	if fs := FSOf(disks, path); fs != nil {
		return fs.Type
	}
	return ""
}

// FSOf returns the filesystem found on the device at path, if any.
func FSOf(disks []Disk, path string) *fsprobe.FS {
	_, fs := locate(disks, path)
	return fs
}

// DiskOf returns the device node of the disk the device at path is, or is
// a partition of; "" when it is none of disks.
func DiskOf(disks []Disk, path string) string {
	if d, _ := locate(disks, path); d != nil {
		return d.Path
	}
	return ""
}

// locate finds the device at path among disks: its disk, and the
// filesystem on it.
func locate(disks []Disk, path string) (*Disk, *fsprobe.FS) {
	for i, d := range disks {
		if d.Path == path {
			return &disks[i], d.FS
		}
		for _, p := range d.Partitions {
			if p.Path == path {
				return &disks[i], p.FS
			}
		}
	}
	return nil, nil
}
