// Package preflight checks, before anything is written, that a migration
// can succeed: the installed version may be migrated, the install media is
// a writable FAT32 with room for the backup, the data volumes can be read,
// the target disk is free and large enough for the new layout with its kept
// partitions where they are. Each check passes or fails with its figures.
package preflight

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/rollback"
)

// Check is one preflight check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is every check, in order.
type Report struct {
	Checks []Check `json:"checks"`
	// Rollback says whether the media has room, beside the backup, for a
	// copy of every byte the migration overwrites: the way back.
	Rollback bool `json:"rollback"`
}

// ErrFailed is wrapped by Report.Err when a check failed.
var ErrFailed = errors.New("preflight failed")

// Err returns nil when every check passed, else an error naming the failed.
func (r Report) Err() error {
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if failed == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrFailed, strings.Join(failed, "; "))
}

// Env is what the checks ask of the machine.
type Env interface {
	// MediaFree returns the free bytes of the media's filesystem on dev.
	MediaFree(dev string) (int64, error)
	// TreeSize returns the bytes under path in the installed system's
	// files (its root, and its state laid over it when it has one).
	TreeSize(sys *roles.Assignment, path string) (int64, error)
	// ReadVolume mounts the volume read-only and lists its top folder.
	ReadVolume(v roles.Volume) error
	// Busy returns an error if the disk is in use (mounted, held open).
	Busy(dev string) error
}

// Margin is added to the backup's size when checking the media's room.
const Margin = 64 << 20

// Input is what preflight checks.
type Input struct {
	Release *release.Manifest
	// SignedBy names the key the release verified with.
	SignedBy string
	Roles    *roles.Result
	// BackupOnly is set for a run that writes only the backup (backup and
	// recover modes): the release's own checks (source version, target
	// size, target busy) are not made, since nothing will be installed.
	// Release may then be only the rescue image's profile of the product
	// (no version): when no release is on the media.
	BackupOnly bool
	// Through are the verified manifests of the releases a repository's
	// route passes on the way to Release without booting them, oldest
	// first: each must migrate the version before it, and place its layout
	// on the disk, as if it were written; Release then migrates the last.
	Through []*release.Manifest
}

// Run performs every check and returns the report.
func Run(in Input, env Env) Report {
	var r Report
	add := func(name string, err error, ok string) {
		c := Check{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			c.Detail = err.Error()
		}
		r.Checks = append(r.Checks, c)
	}
	m := in.Release
	sys := in.Roles.System()
	if m.Version.String() == "" {
		add("release", nil, "none: "+m.Product+" recognised by the rescue image's profile, backing up only")
	} else {
		add("release signature", nil, fmt.Sprintf("%s %s signed by %s", m.Product, m.Version, in.SignedBy))
	}

	switch {
	case in.BackupOnly:
	case sys == nil:
		add("source version", nil, "no installed "+m.Product+": fresh install")
	case m.MigrateFrom == nil:
		add("source version", fmt.Errorf("%s %s installs fresh only; it migrates no version (found %s)", m.Product, m.Version, sys.Version), "")
	case len(in.Through) > 0:
		add("source version", Route(sys, in.Through, m), routeDetail(sys.Version, in.Through, m))
	default:
		err := versionAllowed(m, sys.Version)
		add("source version", err, fmt.Sprintf("%s %s is in %s", m.Product, sys.Version, m.MigrateFrom))
	}

	mediaDev, mediaErr := checkMedia(in.Roles)
	add("install media", mediaErr, "FAT32, writable: "+mediaDev)
	var free, need int64
	if mediaErr == nil {
		var detail string
		var err error
		need, detail, err = neededRoom(m, sys, env)
		if err == nil {
			free, err = env.MediaFree(mediaDev)
			if err == nil && free < need {
				err = fmt.Errorf("%s free on %s, %s needed (%s)", inventory.HumanSize(free), mediaDev, inventory.HumanSize(need), detail)
			}
			detail = fmt.Sprintf("%s free, %s needed (%s)", inventory.HumanSize(free), inventory.HumanSize(need), detail)
		}
		add("media free space", err, detail)
	}

	for _, a := range in.Roles.Disks {
		for _, v := range a.Volumes {
			add("data volume "+volumeName(v), env.ReadVolume(v), fmt.Sprintf("%s %s on %s readable", v.FSType, v.UUID, v.Device))
		}
	}

	if sys != nil && !in.BackupOnly {
		add("target not busy", env.Busy(sys.Disk.Path), sys.Disk.Path+" is not in use")
		pl, err := Layout(m, sys)
		detail := ""
		if err == nil {
			detail = fmt.Sprintf("%s table: %s on %s (%s)", pl.Table, describe(pl.Extents), sys.Disk.Path, inventory.HumanSize(sys.Disk.Size))
		}
		add("target layout", err, detail)
		if err == nil && mediaErr == nil {
			r.Rollback, detail = rollbackRoom(pl, free, need)
			add("rollback", nil, detail)
		}
	}
	return r
}

// rollbackRoom says whether the media has room for a copy of what the
// placement overwrites (bounded by its raw size; zstd makes it smaller).
func rollbackRoom(pl release.Placement, free, need int64) (bool, string) {
	raw := int64(1 << 20) // the table's bytes, generously
	for _, e := range pl.Extents {
		if e.Role != release.RoleKeep {
			raw += e.Bytes
		}
	}
	if n := (raw + rollback.PieceSize - 1) / rollback.PieceSize; n > rollback.MaxPieces {
		return false, fmt.Sprintf("not available: the migration overwrites %s, more than a save holds", inventory.HumanSize(raw))
	}
	if free >= need+raw {
		return true, fmt.Sprintf("available: the %s the migration overwrites are saved on the media first", inventory.HumanSize(raw))
	}
	return false, fmt.Sprintf("not available: the migration overwrites %s, the media has %s free beyond the backup's %s (a larger key keeps the way back)",
		inventory.HumanSize(raw), inventory.HumanSize(max(free-need, 0)), inventory.HumanSize(need))
}

// Migratable tells whether release m can migrate the installed system
// sys, and where its layout goes: what a backup-only run keeps as the plan
// when it can.
func Migratable(m *release.Manifest, sys *roles.Assignment) (release.Placement, error) {
	if m.MigrateFrom == nil {
		return release.Placement{}, fmt.Errorf("%s %s installs fresh only", m.Product, m.Version)
	}
	if err := versionAllowed(m, sys.Version); err != nil {
		return release.Placement{}, err
	}
	return Layout(m, sys)
}

// Route checks a way from the installed system sys to release m through
// the releases through, none of them booted: each release's migrate_from
// holds the version before it, and each one's layout places on the disk
// as m's must. A release passed through is planned as if it were written;
// only m is.
func Route(sys *roles.Assignment, through []*release.Manifest, m *release.Manifest) error {
	from := sys.Version
	for _, t := range append(slices.Clone(through), m) {
		if t.Product != m.Product {
			return fmt.Errorf("the route to %s %s passes %s %s, another product", m.Product, m.Version, t.Product, t.Version)
		}
		if t.MigrateFrom == nil {
			return fmt.Errorf("the route to %s %s passes %s %s, which installs fresh only", m.Product, m.Version, t.Product, t.Version)
		}
		if err := versionAllowed(t, from); err != nil {
			return fmt.Errorf("the route to %s %s: %w", m.Product, m.Version, err)
		}
		if t != m {
			if _, err := Layout(t, sys); err != nil {
				return fmt.Errorf("the route to %s %s passes %s, whose layout would not go on this disk: %w", m.Product, m.Version, t.Version, err)
			}
		}
		from = t.Version.String()
	}
	return nil
}

// routeDetail says the route Route checked.
func routeDetail(installed string, through []*release.Manifest, m *release.Manifest) string {
	vs := []string{installed}
	for _, t := range through {
		vs = append(vs, t.Version.String())
	}
	return fmt.Sprintf("%s %s → %s, each in the next's migrate_from; %s passed without a boot", m.Product, strings.Join(vs, " → "), m.Version, strings.Join(vs[1:], ", "))
}

func versionAllowed(m *release.Manifest, installed string) error {
	v, err := version.Parse(installed)
	if err != nil {
		return err
	}
	if !m.MigrateFrom.Contains(v) {
		return fmt.Errorf("%s %s cannot be migrated to %s: it migrates %s only", m.Product, installed, m.Version, m.MigrateFrom)
	}
	return nil
}

// checkMedia checks the install media is a writable FAT32 and returns its
// filesystem's device.
func checkMedia(r *roles.Result) (string, error) {
	a := r.Media()
	if a == nil {
		return "", errors.New("no install media found")
	}
	if a.Disk.ReadOnly {
		return "", fmt.Errorf("%s is read-only (write-protected?): the backup cannot be written", a.Disk.Path)
	}
	dev, fs := a.MediaFS()
	if fs == nil || fs.Version != "FAT32" {
		v := "no FAT"
		if fs != nil {
			v = fs.Version
		}
		return dev, fmt.Errorf("%s is %s, not FAT32", dev, v)
	}
	return dev, nil
}

// neededRoom is the room the media must have: the backup (configuration,
// index and fstab of the installed system) plus a margin, and never less
// than the release's minimum.
func neededRoom(m *release.Manifest, sys *roles.Assignment, env Env) (int64, string, error) {
	var backup int64
	if sys != nil {
		for _, p := range append(append(append([]string{}, m.Config...), m.Index...), "/etc/fstab") {
			n, err := env.TreeSize(sys, p)
			if err != nil {
				return 0, "", fmt.Errorf("size of %s on %s: %w", p, sys.Source(), err)
			}
			backup += n
		}
	}
	need := max(backup+Margin, m.MinMediaFree)
	return need, fmt.Sprintf("backup %s + margin %s, release minimum %s",
		inventory.HumanSize(backup), inventory.HumanSize(Margin), inventory.HumanSize(m.MinMediaFree)), nil
}

// ErrDataInTheWay refuses a migration that would drop or overwrite a data
// partition of the system disk.
var ErrDataInTheWay = errors.New("a data partition of the system disk cannot be kept")

// Layout places the release's layout on the system disk. Every partition
// of the system disk that the old system mounts as data is kept where it
// is, whatever its label: in the keep partition whose keep_label it
// carries, else in the first keep partition left, else as one more kept
// partition like the layout's last. The release's table is used, or its
// fallback when that cannot hold the kept partitions (an MBR when data runs
// to the disk's last sector). The new table is then serialized and read
// back as the job will write it: anything it cannot hold is refused here,
// before any write.
func Layout(m *release.Manifest, sys *roles.Assignment) (release.Placement, error) {
	l, kept, err := keptPartitions(m.Layout, sys)
	if err != nil {
		return release.Placement{}, err
	}
	if err := accountedFor(sys, kept); err != nil {
		return release.Placement{}, err
	}
	g := ptable.Geometry{Size: sys.Disk.Size, SectorSize: max(sys.Disk.SectorSize, 512)}
	var errs []error
	for _, t := range []string{l.Table, l.Fallback} {
		if t == "" {
			continue
		}
		first, end := ptable.Usable(t, g)
		ext, err := l.PlaceIn(g.Size, release.Region{Table: t, Start: first, End: end}, kept)
		if err == nil {
			pl := release.Placement{Table: t, Extents: ext}
			// The identifiers depend on the run; whether the table can
			// hold the layout does not.
			if _, err = migrate.NewJob("preflight", "", "", m, sys.Disk, pl, nil, "preflight"); err == nil {
				return pl, nil
			}
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return release.Placement{}, errs[0]
	}
	return release.Placement{}, fmt.Errorf("as a GPT: %w; as an MBR (the release's fallback): %w", errs[0], errs[1])
}

// systemMounts are where the installed system mounts what a migration
// replaces: its root and boot files, its system folders.
var systemMounts = map[string]bool{"/": true, "/boot": true, "/boot/efi": true, "/efi": true, "/usr": true, "/var": true, "/tmp": true, "/opt": true}

// accountedFor refuses a migration of a system disk holding a filesystem
// passeur cannot account for: neither kept (data, candidates), nor the old
// root or the state laid over it, swap, an EFI system partition, or mounted by the old system at a
// system folder. Whatever it is, the new table would drop it, and the new
// layout may overwrite it.
func accountedFor(sys *roles.Assignment, kept map[string]release.Extent) error {
	keptAt := map[int64]bool{}
	for _, e := range kept {
		keptAt[e.Start] = true
	}
	mounted := map[string]string{}
	for _, m := range sys.Mounts {
		mounted[m.Device] = m.Mountpoint
	}
	for _, p := range sys.Disk.Partitions {
		mp := mounted[p.Path]
		switch {
		case keptAt[p.Start], p.Path == sys.Root, p.Path == sys.State, p.FS == nil, p.FS.Type == "swap", systemMounts[mp],
			strings.EqualFold(p.PartType, release.TypeGUIDs["esp"]), p.PartType == "ef":
			continue
		}
		what := fmt.Sprintf("%s %q", p.FS.Type, p.FS.Label)
		if mp != "" {
			what += " mounted at " + mp
		} else {
			what += " that the old system does not mount"
		}
		return fmt.Errorf("%w: %s (partition %d of the system disk) holds %s, neither data the release keeps nor the old system's own: passeur does not drop or overwrite what it cannot account for (mount it as data under %s in the old system, or empty it)",
			ErrDataInTheWay, p.Path, p.Number, what, "the release's data folders")
	}
	return nil
}

// keptPartitions maps the layout's keep partitions to the system disk's
// data partitions, adding keep partitions where the old system has more
// data partitions than the layout names.
func keptPartitions(l release.Layout, sys *roles.Assignment) (release.Layout, map[string]release.Extent, error) {
	type dataPart struct {
		v    roles.Volume
		part inventory.Partition
	}
	var data []dataPart
	for _, v := range append(slices.Clone(sys.Volumes), sys.Candidates...) {
		for _, part := range sys.Disk.Partitions {
			if part.Path == v.Device && part.Path != sys.Root && part.Path != sys.State {
				data = append(data, dataPart{v, part})
			}
		}
	}
	kept := map[string]release.Extent{}
	placed := map[string]bool{}
	var slots []release.Partition
	for _, p := range l.Partitions {
		if p.Role == release.RoleKeep {
			slots = append(slots, p)
		}
	}
	// By label first, then the remaining slots in order.
	for pass := 0; pass < 2; pass++ {
		for _, p := range slots {
			if _, ok := kept[p.Name]; ok {
				continue
			}
			for _, d := range data {
				if placed[d.part.Path] {
					continue
				}
				if ok, _ := path.Match(p.KeepLabel, d.v.Label); pass == 1 || ok || matches(p.KeepLabel, d.part.PartLabel) {
					kept[p.Name] = release.Extent{Start: d.part.Start, Bytes: d.part.Size}
					placed[d.part.Path] = true
					break
				}
			}
		}
	}
	for _, d := range data {
		if placed[d.part.Path] {
			continue
		}
		if len(slots) == 0 {
			return l, nil, fmt.Errorf("%w: the old system mounts %s from %s (partition %d of the system disk), and the release's layout keeps no partition",
				ErrDataInTheWay, volumeName(d.v), d.part.Path, d.part.Number)
		}
		extra := slots[len(slots)-1]
		extra.Name = fmt.Sprintf("%s-%d", extra.Name, d.part.Number)
		extra.Size = release.Size{Bytes: d.part.Size}
		l.Partitions = append(slices.Clone(l.Partitions), extra)
		kept[extra.Name] = release.Extent{Start: d.part.Start, Bytes: d.part.Size}
		placed[d.part.Path] = true
	}
	return l, kept, nil
}

func matches(glob, s string) bool {
	ok, _ := path.Match(glob, s)
	return ok && s != ""
}

func describe(ext []release.Extent) string {
	var parts []string
	for _, e := range ext {
		parts = append(parts, fmt.Sprintf("%s %s", e.Name, inventory.HumanSize(e.Bytes)))
	}
	return strings.Join(parts, ", ")
}

func volumeName(v roles.Volume) string {
	if v.Mountpoint != "" {
		return v.Mountpoint
	}
	return v.Spec
}
