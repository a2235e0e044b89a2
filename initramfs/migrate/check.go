package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/roles"
)

// ErrRunMismatch refuses to take up an unfinished run whose journaled job
// is not the one passeur computes now for this machine: a journal on the
// media is a record of progress, never an authority on what is written
// where.
var ErrRunMismatch = errors.New("the unfinished run on the media does not match this machine")

// TableState says what partition table a job's target carries now.
type TableState int

const (
	OldTable TableState = iota // the table the job was planned on: the table step is still to come
	NewTable                   // exactly the bytes of the job's table: the table step was done
)

// OnDisk reads, on the target, the bytes the job's table step writes and
// says whether they are already the job's table.
func (j *Job) OnDisk(disk io.ReaderAt) (TableState, error) {
	im, err := j.TableImage()
	if err != nil {
		return OldTable, fmt.Errorf("%w: %w", ErrRunMismatch, err)
	}
	for _, w := range im {
		got := make([]byte, len(w.Data))
		if _, err := disk.ReadAt(got, w.Offset); err != nil {
			return OldTable, fmt.Errorf("read the target's table at %d: %w", w.Offset, err)
		}
		if !bytes.Equal(got, w.Data) {
			return OldTable, nil
		}
	}
	return NewTable, nil
}

// Check compares a job read from a journal with what passeur computes now
// from trusted inputs: the verified manifest m (whose exact bytes hash to
// manifestSHA), the target disk as this boot's inventory reads it, and
// the run's seed. Before the table step, the target still carries the
// table the job was planned on, and the whole job is made again and must
// be the same: same release, same placement of the release's layout
// around the same kept partitions, same table bytes, same identifiers.
// After it, the target must carry the job's table to the byte, and every
// partition the job writes must be the release's. Any difference is
// ErrRunMismatch, naming it.
func (j *Job) Check(m *release.Manifest, manifestSHA, seed string, disk inventory.Disk, state TableState) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrRunMismatch, fmt.Sprintf(format, a...))
	}
	if j.ManifestSHA256 != manifestSHA {
		return fail("the job was made from manifest %s, the verified release's is %s", j.ManifestSHA256, manifestSHA)
	}
	if j.Mode != "migrate" && j.Mode != "install" {
		return fail("mode %q", j.Mode)
	}
	if !j.Target.Matches(disk) {
		return fail("the job writes %s, not %s (%s)", j.Target, disk.Path, identity.Name(disk))
	}
	if len(j.FormatData) > 0 && j.Mode != "install" {
		return fail("a %s job formats no disk", j.Mode)
	}
	if len(j.FormatData) > len(j.Reattach) {
		return fail("%d disks to format for %d volumes", len(j.FormatData), len(j.Reattach))
	}
	for i, t := range j.FormatData {
		want := DataVolume(m, i+1, seed, t)
		if got := j.Reattach[i]; t.Serial+t.WWID == "" || t.Matches(disk) || got != want {
			return fail("data disk %s: formatted as %s %s %q, the release and the run give %s %s %q", t, got.FSType, got.UUID, got.Label, want.FSType, want.UUID, want.Label)
		}
	}
	if state == NewTable {
		return j.checkWritten(m, fail)
	}
	again, err := j.replan(m, manifestSHA, seed, disk)
	if err != nil {
		return fail("%v", err)
	}
	return sameJob(j, again, fail)
}

// replan makes the job again on disk: the release's layout (with the
// extra keep partitions the job holds, as preflight adds them) placed
// around the job's kept partitions, each of which must be a partition of
// disk now, in the first table type of the layout that holds it.
func (j *Job) replan(m *release.Manifest, manifestSHA, seed string, disk inventory.Disk) (*Job, error) {
	l := m.Layout
	l.Partitions = append([]release.Partition(nil), l.Partitions...)
	var last *release.Partition
	for i := range m.Layout.Partitions {
		if m.Layout.Partitions[i].Role == release.RoleKeep {
			last = &m.Layout.Partitions[i]
		}
	}
	kept := map[string]release.Extent{}
	for _, e := range j.Extents {
		if e.Role != release.RoleKeep {
			continue
		}
		if _, ok := kept[e.Name]; ok {
			return nil, fmt.Errorf("kept partition %s twice", e.Name)
		}
		if !hasPartition(m.Layout, e.Name) {
			if last == nil || !strings.HasPrefix(e.Name, last.Name+"-") {
				return nil, fmt.Errorf("kept partition %s is not in the release's layout", e.Name)
			}
			extra := *last
			extra.Name, extra.Size = e.Name, release.Size{Bytes: e.Bytes}
			l.Partitions = append(l.Partitions, extra)
		}
		if !diskHas(disk, e) {
			return nil, fmt.Errorf("kept partition %s at %d+%d is no partition of %s", e.Name, e.Start, e.Bytes, disk.Path)
		}
		kept[e.Name] = release.Extent{Start: e.Start, Bytes: e.Bytes}
	}
	g := ptable.Geometry{Size: disk.Size, SectorSize: max(disk.SectorSize, 512)}
	var errs []error
	for _, t := range []string{l.Table, l.Fallback} {
		if t == "" {
			continue
		}
		first, end := ptable.Usable(t, g)
		ext, err := l.PlaceIn(g.Size, release.Region{Table: t, Start: first, End: end}, kept)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		again, err := NewJob(j.Mode, j.Release, manifestSHA, m, disk, release.Placement{Table: t, Extents: ext}, j.Reattach, seed)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		again.Reinstall, again.FormatData = j.Reinstall, j.FormatData
		return again, nil
	}
	return nil, fmt.Errorf("the release's layout cannot be placed on %s around the job's kept partitions: %w", disk.Path, errors.Join(errs...))
}

func hasPartition(l release.Layout, name string) bool {
	for _, p := range l.Partitions {
		if p.Name == name {
			return true
		}
	}
	return false
}

func diskHas(d inventory.Disk, e release.Extent) bool {
	for _, p := range d.Partitions {
		if p.Start == e.Start && p.Size == e.Bytes {
			return true
		}
	}
	return false
}

// checkWritten checks a job whose table is on the disk already: the bytes
// were compared by OnDisk; what the job still does must be the release's.
func (j *Job) checkWritten(m *release.Manifest, fail func(string, ...any) error) error {
	im, err := j.TableImage()
	if err != nil || im.SHA256() != j.TableSHA256 {
		return fail("the job's table does not serialize to its recorded hash")
	}
	if err := j.CheckRoles(m); err != nil {
		return fail("%v", err)
	}
	return nil
}

// CheckRoles checks that every partition of the job has its role in the
// release's layout: a partition written is one of the release's, with its
// artifact or filesystem; a partition kept is a keep partition of the
// layout, or one more of its last (as preflight adds them). A table says
// where partitions are, not which are kept: this is what keeps a job read
// from the media from turning a kept data partition into one to write (or,
// for a rollback, to put back).
func (j *Job) CheckRoles(m *release.Manifest) error {
	var last string
	for _, p := range m.Layout.Partitions {
		if p.Role == release.RoleKeep {
			last = p.Name
		}
	}
	for _, e := range j.Extents {
		ok := e.Role == release.RoleKeep && last != "" && strings.HasPrefix(e.Name, last+"-")
		for _, p := range m.Layout.Partitions {
			ok = ok || p.Name == e.Name && p.Role == e.Role && p.Artifact == e.Artifact && p.Filesystem == e.Filesystem && p.Type == e.Type
		}
		if !ok {
			return fmt.Errorf("partition %s (%s) is not the release's", e.Name, e.Role)
		}
	}
	return nil
}

// sameJob compares two jobs field by field (the target's device path,
// which a boot may change, aside), naming the first that differs.
func sameJob(got, want *Job, fail func(string, ...any) error) error {
	g, w := *got, *want
	g.Target.Path, w.Target.Path = "", ""
	gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
	for i := 0; i < gv.NumField(); i++ {
		a, _ := json.Marshal(gv.Field(i).Interface())
		b, _ := json.Marshal(wv.Field(i).Interface())
		if !bytes.Equal(a, b) {
			name, _, _ := strings.Cut(gv.Type().Field(i).Tag.Get("json"), ",")
			return fail("%s is %s in the journal, %s as computed now", name, clip(a), clip(b))
		}
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// AddDataDisk adds to an install's job the n-th data disk to format (from
// 1), with the label and filesystem UUID the release and the run give it.
func (j *Job) AddDataDisk(m *release.Manifest, d inventory.Disk, seed string) {
	t := identity.Of(d, "")
	j.FormatData = append(j.FormatData, t)
	j.Reattach = append(j.Reattach, DataVolume(m, len(j.FormatData), seed, t))
}

// DataVolume is the volume an install makes of its n-th data disk: the
// release's first data label pattern, its * replaced by n, and a
// filesystem UUID derived from the run and the disk.
func DataVolume(m *release.Manifest, n int, seed string, t identity.Disk) roles.Volume {
	label := fmt.Sprintf("data-%d", n)
	for _, p := range m.DataVolumes.LabelPatterns {
		if strings.Count(p, "*") == 1 && !strings.ContainsAny(p, "?[") {
			label = strings.Replace(p, "*", fmt.Sprint(n), 1)
			break
		}
	}
	return roles.Volume{Spec: "LABEL=" + label, Label: label, FSType: "ext4", UUID: release.StableUUID(seed + "\x00data\x00" + t.Serial + t.WWID)}
}
