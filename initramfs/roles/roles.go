// Package roles decides what each disk is to passeur, from content, never
// from device names or bus order: the install media (by passeur's own marker
// on it), the system disk (a recognised install of the release's product),
// the data disks (the volumes that system's fstab mounts; a filesystem that
// only carries the release's data labels is a candidate the operator may
// add), and unknown disks, which passeur never writes.
// When the evidence is ambiguous it refuses with a named error.
package roles

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
)

// Role is what a disk is to passeur.
type Role string

// The roles.
const (
	InstallMedia Role = "install-media"
	System       Role = "system"
	Data         Role = "data"
	Unknown      Role = "unknown"
)

// Errors a caller branches on: each is a refusal in unattended mode and a
// question to the operator in interactive mode.
var (
	ErrTwoSystems        = errors.New("more than one disk holds an install of the product")
	ErrUnreadableVersion = errors.New("installed product found but its version cannot be read")
	ErrMissingVolume     = errors.New("a data volume of the installed system is missing")
	ErrClonedVolume      = errors.New("a data volume is found on more than one device (cloned UUID)")
	// ErrTwoStates: the disk of an install whose state lies over its root
	// has more than one filesystem with the state's label. Not a
	// question: which one the system uses cannot be told from outside.
	ErrTwoStates = errors.New("more than one filesystem of the system's disk carries the state label")
	// ErrNoState: a read-only root of an install that lays its state
	// over it, and no state on its disk (relabelled, or its superblock
	// unreadable): the install's own files cannot be read.
	ErrNoState = errors.New("the installed system's state is not found beside its read-only root")
	// ErrCandidate is the question about a filesystem that carries the
	// release's data labels but that the installed system does not mount;
	// unattended, it is left out (not an error).
	ErrCandidate = errors.New("a filesystem carries a data label but the installed system does not mount it")
)

// Reader gives read-only access to the files of a filesystem on a device
// (a partition or a whole disk). On the rescue system it mounts read-only
// without journal replay; tests give folders or maps.
type Reader interface {
	Files(dev string, fsType string) (fs.FS, error)
	// Layered gives the files of upper laid over those of lower, as an
	// overlay shows them (a name in upper hides the same in lower).
	Layered(upper, upperType, lower, lowerType string) (fs.FS, error)
}

// Assignment is the role of one disk, with why.
type Assignment struct {
	Disk    inventory.Disk `json:"disk"`
	Role    Role           `json:"role"`
	Reasons []string       `json:"reasons"`
	// For the system disk: the product and version found, and the device
	// holding the installed root.
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	Root    string `json:"root,omitempty"`
	// State is the device of the filesystem the install lays over its
	// root (the release's recognize.state_label), or "".
	State string `json:"state,omitempty"`
	// Volumes are the data volumes on this disk (a system disk with a data
	// partition, the "small" layout, has some: those partitions are kept).
	Volumes []Volume `json:"volumes,omitempty"`
	// Candidates, on the system disk, are partitions carrying the
	// release's data labels that the installed system does not mount: kept
	// in place, not reattached.
	Candidates []Volume `json:"candidates,omitempty"`
	// Mounts, on the system disk, are what the installed system mounts of
	// it besides its data (root, /boot, swap…), by device.
	Mounts []Mount `json:"mounts,omitempty"`
}

// Mount is a device the installed system mounts.
type Mount struct {
	Device     string `json:"device"`
	Mountpoint string `json:"mountpoint"`
	Type       string `json:"type"`
}

// Volume is a data volume of the installed system.
type Volume struct {
	Device     string `json:"device"`
	Spec       string `json:"spec"`       // as the old fstab names it, or LABEL= for label matches
	Mountpoint string `json:"mountpoint"` // in the old system, empty for label matches
	FSType     string `json:"fstype"`
	UUID       string `json:"uuid"`
	Label      string `json:"label,omitempty"`
}

// Files reads the installed system's files as it sees them: its root,
// with its state laid over it when it has one.
func (a *Assignment) Files(r Reader) (fs.FS, error) {
	disk := []inventory.Disk{a.Disk}
	if a.State == "" {
		return r.Files(a.Root, inventory.TypeOf(disk, a.Root))
	}
	return r.Layered(a.State, inventory.TypeOf(disk, a.State), a.Root, inventory.TypeOf(disk, a.Root))
}

// CanHoldState says whether a filesystem of type typ can hold an
// install's state (what the install writes: its configuration, index,
// fstab, and what passeur leaves there).
func CanHoldState(typ string) bool { return writableFS[typ] }

// Source names where the installed system's files are read from: its
// root's device, or "STATE over ROOT".
func (a *Assignment) Source() string {
	if a.State == "" {
		return a.Root
	}
	return a.State + " over " + a.Root
}

// MediaFS returns the device and filesystem of the install media's FAT: its
// first vfat partition, else the whole disk's filesystem (which may be nil
// or not FAT: the caller checks).
func (a *Assignment) MediaFS() (string, *fsprobe.FS) {
	for _, p := range a.Disk.Partitions {
		if p.FS != nil && p.FS.Type == "vfat" {
			return p.Path, p.FS
		}
	}
	return a.Disk.Path, a.Disk.FS
}

// VersionOf reads, in the files of a system as it runs (its root, its
// state laid over it), the version of release m's product it is, with m's
// recognition rules: "" when it is not an install of it (a file the rules
// name is missing), ErrUnreadableVersion when its version file does not
// say one.
func VersionOf(files fs.FS, m *release.Manifest) (string, error) {
	re, err := regexp.Compile(m.Recognize.VersionRegexp)
	if err != nil {
		return "", err
	}
	for _, p := range append(slices.Clone(m.Recognize.Files), m.Recognize.VersionFile) {
		if _, err := fs.Stat(files, rel(p)); err != nil {
			return "", nil
		}
	}
	data, err := fs.ReadFile(files, rel(m.Recognize.VersionFile))
	if err != nil {
		return "", err
	}
	match := re.FindSubmatch(data)
	if match == nil {
		return "", fmt.Errorf("%w: %s does not hold a version matching %q", ErrUnreadableVersion, m.Recognize.VersionFile, m.Recognize.VersionRegexp)
	}
	return string(match[1]), nil
}
