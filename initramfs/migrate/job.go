// Package migrate writes a release onto the system disk and says which disk
// an interrupted migration was writing: the job recorded in the journal
// before the first write (the target's identity, every partition's extent,
// the release, the volumes to reattach), the artifact images written in
// one pass at their partitions' places, the empty filesystems made, and
// the GPT written last. Each step is idempotent: a run taken up after a
// power cut does a step again from its start.
package migrate

import (
	"fmt"
	"strings"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/roles"
)

// Job is what a migration or an install writes, fixed before its first
// write and journaled, so that a run taken up after a power cut needs
// nothing from the (by then half-written) system disk.
type Job struct {
	Mode    string `json:"mode"`    // migrate or install
	Release string `json:"release"` // the release's folder on the media
	// ManifestSHA256 is the hash of the signed manifest the job was made
	// from: a run taken up with another release refuses to go on.
	ManifestSHA256 string `json:"manifest_sha256"`
	Target         Target `json:"target"`
	// Extents are the new partitions, kept ones included, in table order.
	Extents []release.Extent `json:"extents"`
	// DiskGUID is the new table's disk GUID.
	DiskGUID string `json:"disk_guid"`
	// State is the partition that receives the new system's fstab and the
	// restored files; empty when the release has none.
	State string `json:"state,omitempty"`
	// StateUUID is the filesystem UUID given to the state partition.
	StateUUID string `json:"state_uuid,omitempty"`
	// Health is where, on the state partition, the new system leaves its
	// health report (the release's "health").
	Health string `json:"health,omitempty"`
	// Reattach are the old system's data volumes, to mount in the new one.
	Reattach []roles.Volume `json:"reattach,omitempty"`
	// Reinstall is set when the installed version is the release's: the
	// images are compared before they are written, and only what differs
	// is written.
	Reinstall bool `json:"reinstall,omitempty"`
	// FormatData are data disks the operator asked to be formatted
	// (install only), by identity.
	FormatData []Target `json:"format_data,omitempty"`
}

// Target says which disk a job writes, by what survives a rewrite of its
// table: serial or WWID and size; with neither serial nor WWID, the table
// identifier before and after the job.
type Target struct {
	Path     string `json:"path"` // at the time the job was made; informative
	Serial   string `json:"serial,omitempty"`
	WWID     string `json:"wwid,omitempty"`
	Size     int64  `json:"size"`
	OldTable string `json:"old_table,omitempty"`
	NewTable string `json:"new_table,omitempty"`
}

// TargetOf describes d as a job's target; newTable is the GUID the job
// gives its new table.
func TargetOf(d inventory.Disk, newTable string) Target {
	t := Target{Path: d.Path, Serial: d.Serial, WWID: d.WWID, Size: d.Size, NewTable: newTable}
	if d.Table != nil {
		t.OldTable = d.Table.ID
	}
	return t
}

// Matches reports whether d is the disk t names.
func (t Target) Matches(d inventory.Disk) bool {
	if d.Size != t.Size {
		return false
	}
	switch {
	case t.WWID != "":
		return d.WWID == t.WWID
	case t.Serial != "":
		return d.Serial == t.Serial
	}
	if d.Table == nil {
		return false
	}
	id := strings.ToLower(d.Table.ID)
	return id != "" && (id == strings.ToLower(t.OldTable) || id == strings.ToLower(t.NewTable))
}

// Find returns the one disk among disks that t names.
func (t Target) Find(disks []inventory.Disk) (*inventory.Disk, error) {
	var found []*inventory.Disk
	for i := range disks {
		if t.Matches(disks[i]) {
			found = append(found, &disks[i])
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrTargetGone, t)
	}
	return nil, fmt.Errorf("%w: %d disks match %s", ErrTargetGone, len(found), t)
}

func (t Target) String() string {
	id := "no serial"
	switch {
	case t.WWID != "":
		id = "wwid " + t.WWID
	case t.Serial != "":
		id = "serial " + t.Serial
	}
	return fmt.Sprintf("%s (%s, %s)", t.Path, id, inventory.HumanSize(t.Size))
}

// Extent returns the job's extent called name.
func (j *Job) Extent(name string) (release.Extent, bool) {
	for _, e := range j.Extents {
		if e.Name == name {
			return e, true
		}
	}
	return release.Extent{}, false
}

// NewJob fixes what a run writes: the release's layout placed on the
// system disk (ext, from preflight), kept partitions with their old
// PARTUUIDs, and identifiers derived from seed (the run's name), so that
// taking the run up gives the same table and filesystems.
func NewJob(mode, relDir, manifestSHA string, m *release.Manifest, sys inventory.Disk, ext []release.Extent, vols []roles.Volume, seed string) *Job {
	j := &Job{Mode: mode, Release: relDir, ManifestSHA256: manifestSHA, Reattach: vols,
		DiskGUID: release.StableUUID(seed + "\x00disk")}
	j.Target = TargetOf(sys, j.DiskGUID)
	for _, e := range ext {
		if e.Role == release.RoleKeep {
			for _, p := range sys.Partitions {
				if p.Start == e.Start && p.PartUUID != "" {
					e.UUID = strings.ToLower(p.PartUUID)
				}
			}
		}
		if e.UUID == "" {
			e.UUID = release.StableUUID(seed + "\x00" + e.Name)
		}
		j.Extents = append(j.Extents, e)
	}
	if st := m.StatePartition(); st != "" {
		j.State, j.StateUUID, j.Health = st, release.StableUUID(seed+"\x00state-fs"), m.Health
	}
	return j
}
