// Package staging is the staging area: where a box's running system
// (passeur stage) leaves a release for the rescue to apply, and where that
// rescue keeps the run's journal and backup.
//
// The release declares where it may be staged (release.Staging): a folder
// at the root of one of the old system's data volumes, which no migration
// writes, on a disk other than the one the running system boots from. The
// folder holds ImageFile: a FAT filesystem laid out as a passeur key
// (marker, releases, repository memory, backups), its blocks allocated
// when it is made; beside it RescueDir, the board's rescue image, and,
// while passeur stage brings a release, IncomingDir. The rescue, told passeur.staged=UUID/DIR, attaches it
// on a loop device and finds it as it finds a key, so the staged path is
// the key's path: roles, preflight, journal, backup, take-up after a power
// cut. The image's blocks are reserved at staging: the rescue never fills
// the data volume, and writes nothing else on it.
package staging

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/mountinfo"
)

// ImageFile is the staging area's media image, in the release's folder.
const ImageFile = "media.fat"

// RescueDir is the folder, beside the image, of the board's rescue image
// (kernel and initramfs) the running system boots into.
const RescueDir = "rescue"

// StagedFile is the record passeur stage leaves in the image.
const StagedFile = "passeur/staged.json"

// Label is the FAT label of the image.
const Label = "PASSEUR-STG"

// Slack is what the image holds beyond the release's artifacts and its
// min_media_free: the FAT's own tables, the repository's memory, the run's
// log.
const Slack = 64 << 20

// Bounds of an image, made or attached.
const (
	MinImage = 64 << 20
	MaxImage = 1 << 40
)

// Errors a caller may branch on.
var (
	// ErrNotDeclared: the release says nothing of staging.
	ErrNotDeclared = errors.New("the release declares no staging area (manifest \"staging\")")
	// ErrNoPlace: no mounted volume may hold the staging area.
	ErrNoPlace = errors.New("no data volume the release declares for staging is mounted read-write off the system disk")
	// ErrBadImage: the staging area's image is not what passeur stage makes.
	ErrBadImage = errors.New("the staging area's image is not a regular file of a sane size")
)

// Size is the size of the image a release needs when missing bytes of its
// artifacts are still to be brought: whole MiB.
func Size(m *release.Manifest, missing int64) int64 {
	n := max(missing+m.MinMediaFree+Slack, MinImage)
	return (n + 1<<20 - 1) &^ (1<<20 - 1)
}

// Device is what the running system knows of a mounted block device.
type Device struct {
	Path string // /dev/…
	Disk string // the whole disk's kernel name
	// Under are the disks the device's blocks are on: Disk, or, for a
	// device-mapper or md device, the disks beneath it.
	Under []string
	FS    *fsprobe.FS
}

// on lists the disks d's blocks are on.
func (d Device) on() []string {
	if len(d.Under) > 0 {
		return d.Under
	}
	return []string{d.Disk}
}

// Volume is a mounted filesystem that may hold the staging area.
type Volume struct {
	Point string `json:"point"`
	Dev   string `json:"dev"`
	Disk  string `json:"disk"`
	Label string `json:"label"`
	UUID  string `json:"uuid"`
	Type  string `json:"type"`
}

// Dir is the staging area's folder on the volume.
func (v Volume) Dir(m *release.Manifest) string { return filepath.Join(v.Point, m.Staging.Dir) }

// Param is the rescue's passeur.staged= for this volume.
func (v Volume) Param(m *release.Manifest) string { return v.UUID + "/" + m.Staging.Dir }

// systemPoints are the mount points whose disks the running system boots
// from: a migration overwrites them.
var systemPoints = []string{"/", "/boot", "/boot/efi", "/efi", "/usr"}

// Volumes lists the mounted filesystems the release may be staged on:
// mounted whole and read-write, labelled as the release's staging
// declares, with a UUID, on none of the disks the running system boots
// from. When want is set, only the volume mounted there is taken, and an
// error says why it cannot be. dev describes a device by major:minor (with
// its disks even when its filesystem cannot be read).
func Volumes(m *release.Manifest, mounts []mountinfo.Mount, dev func(majmin string) (Device, error), want string) ([]Volume, error) {
	if m.Staging == nil {
		return nil, fmt.Errorf("%w: %s %s", ErrNotDeclared, m.Product, m.Version)
	}
	system := map[string]bool{}
	for _, mt := range mounts {
		if !slices.Contains(systemPoints, mt.Point) {
			continue
		}
		d, err := dev(mt.Dev) // its disk may be told when its bytes cannot be read
		if err != nil && d.Disk == "" {
			if strings.HasPrefix(mt.Dev, "0:") {
				continue // no device: a tmpfs, an overlay
			}
			return nil, fmt.Errorf("%w: which disk %s is on cannot be told (%s: %w)", ErrNoPlace, mt.Point, mt.Dev, err)
		}
		for _, disk := range d.on() {
			system[disk] = true
		}
	}
	want = filepath.Clean(want)
	var out []Volume
	var why []string
	seen := map[string]bool{}
	for _, mt := range mounts {
		if want != "." && mt.Point != want || seen[mt.Dev] {
			continue
		}
		d, err := dev(mt.Dev)
		if err != nil {
			if want != "." {
				return nil, fmt.Errorf("%w: %s: %w", ErrNoPlace, want, err)
			}
			continue // not a block device
		}
		if d.FS == nil || !m.StagingVolume(d.FS.Label) {
			if want != "." {
				label := ""
				if d.FS != nil {
					label = d.FS.Label
				}
				why = append(why, fmt.Sprintf("%s (%s) is labelled %q, not one of %q", want, d.Path, label, m.Staging.Labels))
			}
			continue
		}
		onSystem := slices.ContainsFunc(d.on(), func(disk string) bool { return system[disk] })
		switch {
		case onSystem:
			why = append(why, fmt.Sprintf("%s (%s) is on %v, a disk the system boots from", mt.Point, d.Path, d.on()))
		case mt.Root != "/":
			why = append(why, fmt.Sprintf("%s is a folder %s of %s, not all of it", mt.Point, mt.Root, d.Path))
		case mt.ReadOnly:
			why = append(why, fmt.Sprintf("%s (%s) is mounted read-only", mt.Point, d.Path))
		case d.FS.UUID == "":
			why = append(why, fmt.Sprintf("%s (%s) has no filesystem UUID for the rescue to find it by", mt.Point, d.Path))
		default:
			seen[mt.Dev] = true // once, at its first whole read-write mount
			out = append(out, Volume{Point: mt.Point, Dev: d.Path, Disk: d.Disk, Label: d.FS.Label, UUID: d.FS.UUID, Type: d.FS.Type})
		}
	}
	if len(out) == 0 {
		if want != "." && len(why) == 0 {
			why = append(why, want+" is not a mount point")
		}
		if len(why) == 0 {
			why = append(why, fmt.Sprintf("none is mounted labelled %q", m.Staging.Labels))
		}
		return nil, fmt.Errorf("%w: %s", ErrNoPlace, strings.Join(why, "; "))
	}
	return out, nil
}

// Record is what passeur stage leaves in the image (StagedFile): what is
// to be installed, tied to the signed manifest by its hash. The rescue
// verifies the release again, as on any key.
type Record struct {
	Format         int      `json:"format"` // 1
	Product        string   `json:"product"`
	Version        string   `json:"version"`
	Release        string   `json:"release"` // the release's folder in the image
	ManifestSHA256 string   `json:"manifest_sha256"`
	From           string   `json:"from,omitempty"`
	Want           string   `json:"want"`
	Why            string   `json:"why"`
	Through        []string `json:"through,omitempty"`
	Repo           string   `json:"repo"`
	At             string   `json:"at"`
	// Volume is where the image is, and Param the rescue's passeur.staged=.
	Volume Volume `json:"volume"`
	Param  string `json:"param"`
	// Rescue is the rescue image brought beside the image, if any.
	Rescue *Rescue `json:"rescue,omitempty"`
}

// Rescue is a board's rescue image in RescueDir: the SHA-256 of each of
// its files, as the repository signed them.
type Rescue struct {
	Board  string            `json:"board"`
	SHA256 map[string]string `json:"sha256"`
}
