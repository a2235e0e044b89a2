// Package migrate writes a release onto the system disk and says which disk
// an interrupted migration was writing: the job recorded in the journal
// before the first write (the target's identity, every partition's extent,
// the release, the volumes to reattach), the artifact images written in
// one pass at their partitions' places, the empty filesystems made, and
// the GPT written last. Each step is idempotent: a run taken up after a
// power cut does a step again from its start.
package migrate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/rollback"

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
	ManifestSHA256 string        `json:"manifest_sha256"`
	Target         identity.Disk `json:"target"`
	// Table is the new partition table's type: gpt, or dos when the
	// release's layout falls back to an MBR.
	Table string `json:"table"`
	// SectorSize is the target's logical sector size the table is laid in.
	SectorSize int `json:"sector_size"`
	// Extents are the new partitions, kept ones included, in layout order;
	// Numbers are their entry numbers in the new table, in the same order.
	Extents []release.Extent `json:"extents"`
	Numbers []int            `json:"numbers"`
	// DiskGUID is the new table's disk identifier: a GUID, or for an MBR
	// its 8-hex-digit signature.
	DiskGUID string `json:"disk_guid"`
	// TableSHA256 is the hash of the new table's bytes (ptable.Image),
	// computed and read back when the job was made: the table step writes
	// exactly these bytes or nothing.
	TableSHA256 string `json:"table_sha256"`
	// BootUUIDs maps the PARTUUIDs the release's boot entries name to the
	// ones the new table gives those partitions, where they differ (an MBR
	// cannot hold the release's GUIDs): the boot entry step rewrites them.
	BootUUIDs map[string]string `json:"boot_uuids,omitempty"`
	// MBRTypes are, in an MBR, the types kept partitions had in the old
	// MBR (a kept NTFS stays 07), by extent name.
	MBRTypes map[string]string `json:"mbr_types,omitempty"`
	// Identity says, for each kept partition, whether its PARTUUID was
	// carried across or a new one given (and the old system's fstab name
	// replaced by its filesystem UUID).
	Identity []string `json:"identity,omitempty"`
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
	FormatData []identity.Disk `json:"format_data,omitempty"`
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
// system disk (from preflight), kept partitions with their old PARTUUIDs
// where the new table can hold them, identifiers derived from seed (the
// run's name) so that taking the run up gives the same table and
// filesystems, and the new table serialized and read back: a job that
// NewJob returns has a table that can be written.
func NewJob(mode, relDir, manifestSHA string, m *release.Manifest, sys inventory.Disk, pl release.Placement, vols []roles.Volume, seed string) (*Job, error) {
	j := &Job{Mode: mode, Release: relDir, ManifestSHA256: manifestSHA, Reattach: vols, Table: pl.Table,
		SectorSize: max(sys.SectorSize, 512), DiskGUID: release.StableUUID(seed + "\x00disk")}
	if j.Table == "dos" {
		j.DiskGUID = j.DiskGUID[:8]
		if sys.Table != nil && sys.Table.Type == "dos" && sys.Table.ID != "00000000" {
			j.DiskGUID = strings.ToLower(sys.Table.ID) // kept partitions keep their PARTUUIDs
		}
	}
	j.Target = identity.Of(sys, j.DiskGUID)
	j.Numbers = numbers(pl, sys)
	for i, e := range pl.Extents {
		if e.Role == release.RoleKeep {
			j.Identity = append(j.Identity, j.carry(&e, j.Numbers[i], sys))
		} else if e.UUID == "" {
			e.UUID = release.StableUUID(seed + "\x00" + e.Name)
		}
		if j.Table == "dos" {
			if e.Role != release.RoleKeep && e.UUID != "" {
				if j.BootUUIDs == nil {
					j.BootUUIDs = map[string]string{}
				}
				j.BootUUIDs[e.UUID] = mbrPartUUID(j.DiskGUID, j.Numbers[i])
			}
			e.UUID = mbrPartUUID(j.DiskGUID, j.Numbers[i])
		}
		j.Extents = append(j.Extents, e)
	}
	if st := m.StatePartition(); st != "" {
		j.State, j.StateUUID, j.Health = st, release.StableUUID(seed+"\x00state-fs"), m.Health
	}
	if err := j.checkLateSteps(); err != nil {
		return nil, err
	}
	im, err := j.TableImage()
	if err != nil {
		return nil, err
	}
	j.TableSHA256 = im.SHA256()
	return j, nil
}

// ErrLateStep names a late step that would fail for a reason known before
// the first write.
var ErrLateStep = errors.New("a step after the first write cannot be done")

// checkLateSteps refuses, before any write, a job whose late steps cannot
// succeed: a filesystem passeur cannot make, a boot entry to rewrite with
// no ESP to rewrite it on.
func (j *Job) checkLateSteps() error {
	esp := false
	for _, e := range j.Extents {
		if e.Role == release.RoleEmpty && e.Filesystem != "ext4" {
			return fmt.Errorf("%w: partition %s: passeur makes ext4 filesystems only, not %s", ErrLateStep, e.Name, e.Filesystem)
		}
		if e.Role == release.RoleEmpty && e.Bytes < minExt4 {
			return fmt.Errorf("%w: partition %s of %d bytes is too small for an ext4 filesystem (%d at least)", ErrLateStep, e.Name, e.Bytes, minExt4)
		}
		g, _ := e.TypeGUID()
		esp = esp || g == release.TypeGUIDs["esp"] && e.Role == release.RoleArtifact
	}
	if len(j.BootUUIDs) > 0 && !esp {
		return fmt.Errorf("%w: the boot entries must name the MBR's PARTUUIDs, and the layout writes no EFI system partition", ErrLateStep)
	}
	return nil
}

// minExt4 is the smallest partition passeur makes an ext4 filesystem in.
const minExt4 = 4 << 20

// carry gives the kept extent e its old PARTUUID when the new table can
// hold it, and says what was done.
func (j *Job) carry(e *release.Extent, number int, sys inventory.Disk) string {
	var old inventory.Partition
	for _, p := range sys.Partitions {
		if p.Start == e.Start && p.Size == e.Bytes {
			old = p
		}
	}
	was := strings.ToLower(old.PartUUID)
	if j.Table == "dos" && sys.Table != nil && sys.Table.Type == "dos" && old.PartType != "" {
		if j.MBRTypes == nil {
			j.MBRTypes = map[string]string{}
		}
		j.MBRTypes[e.Name] = old.PartType
	}
	switch {
	case j.Table == "dos" && was == mbrPartUUID(j.DiskGUID, number):
		return fmt.Sprintf("%s (%s): PARTUUID %s kept (same MBR signature and number)", e.Name, old.Path, was)
	case j.Table == "dos":
		return fmt.Sprintf("%s (%s): PARTUUID %s becomes %s; the new fstab names it by filesystem UUID", e.Name, old.Path, was, mbrPartUUID(j.DiskGUID, number))
	case isGUID(was):
		e.UUID = was
		return fmt.Sprintf("%s (%s): PARTUUID %s kept", e.Name, old.Path, was)
	}
	e.UUID = release.StableUUID(j.DiskGUID + "\x00" + e.Name)
	return fmt.Sprintf("%s (%s): PARTUUID %q cannot be held by a GPT, given %s; the new fstab names it by filesystem UUID", e.Name, old.Path, was, e.UUID)
}

// numbers gives each extent its entry number in the new table: layout
// order, except that in an MBR a kept partition keeps its old primary
// number when it can (its PARTUUID is the signature and that number).
func numbers(pl release.Placement, sys inventory.Disk) []int {
	out := make([]int, len(pl.Extents))
	used := map[int]bool{}
	if pl.Table == "dos" {
		for i, e := range pl.Extents {
			for _, p := range sys.Partitions {
				if e.Role == release.RoleKeep && p.Start == e.Start && p.Number >= 1 && p.Number <= 4 && !used[p.Number] {
					out[i], used[p.Number] = p.Number, true
				}
			}
		}
	}
	next := 1
	for i := range out {
		if out[i] != 0 {
			continue
		}
		for used[next] {
			next++
		}
		out[i], used[next] = next, true
	}
	return out
}

func mbrPartUUID(sig string, n int) string { return fmt.Sprintf("%s-%02x", sig, n) }

func isGUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// Overwrites lists the bytes of the target that the job writes: each
// partition it writes or makes, then the new table's bytes, last as they
// are written last (a rollback puts them back in this order).
func (j *Job) Overwrites() ([]rollback.Region, error) {
	var out []rollback.Region
	for _, e := range j.Extents {
		if e.Role != release.RoleKeep {
			out = append(out, rollback.Region{Offset: e.Start, Length: e.Bytes})
		}
	}
	im, err := j.TableImage()
	if err != nil {
		return nil, err
	}
	var table []rollback.Region
	for _, r := range im.Ranges() {
		if n := len(table); n > 0 && table[n-1].Offset+table[n-1].Length == r[0] {
			table[n-1].Length += r[1] - r[0]
			continue
		}
		table = append(table, rollback.Region{Offset: r[0], Length: r[1] - r[0]})
	}
	return append(out, table...), nil
}

// PTable is the job's new partition table.
func (j *Job) PTable() (*ptable.Table, error) {
	t := &ptable.Table{Type: j.Table, ID: j.DiskGUID}
	s := int64(j.SectorSize)
	for i, e := range j.Extents {
		if e.Start%s != 0 || e.Bytes%s != 0 {
			return nil, fmt.Errorf("%w: partition %s at %d+%d is not aligned to %d-byte sectors", ptable.ErrTable, e.Name, e.Start, e.Bytes, s)
		}
		p := ptable.Entry{Number: j.Numbers[i], Start: uint64(e.Start / s), Sectors: uint64(e.Bytes / s), UUID: e.UUID}
		if j.Table == "dos" {
			p.Type = e.MBRType()
			if t, ok := j.MBRTypes[e.Name]; ok {
				p.Type = t
			}
			p.Bootable = p.Type == "ef"
		} else {
			typ, err := e.TypeGUID()
			if err != nil {
				return nil, err
			}
			p.Type, p.Name = typ, e.Name
		}
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}

// TableImage serializes the job's new table, checked and read back, and
// checks that none of its bytes falls in a kept partition.
func (j *Job) TableImage() (ptable.Image, error) {
	t, err := j.PTable()
	if err != nil {
		return nil, err
	}
	im, err := t.Encode(ptable.Geometry{Size: j.Target.Size, SectorSize: j.SectorSize})
	if err != nil {
		return nil, err
	}
	for _, r := range im.Ranges() {
		for _, e := range j.Extents {
			if e.Role == release.RoleKeep && r[0] < e.Start+e.Bytes && e.Start < r[1] {
				return nil, fmt.Errorf("%w: the table's bytes %d-%d fall in the kept partition %s", ptable.ErrTable, r[0], r[1], e.Name)
			}
		}
	}
	return im, nil
}
