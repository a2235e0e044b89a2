package roles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
)

// Result is the role of every disk.
type Result struct {
	Disks []Assignment `json:"disks"`
	// Candidates are filesystems carrying the release's data labels that
	// the installed system does not mount, and the operator did not ask to
	// reattach: never reattached, never written.
	Candidates []Volume `json:"candidates,omitempty"`
}

// System returns the system disk's assignment, if there is one.
func (r *Result) System() *Assignment { return r.find(System) }

// Media returns the install media's assignment, if found.
func (r *Result) Media() *Assignment { return r.find(InstallMedia) }

func (r *Result) find(role Role) *Assignment {
	for i := range r.Disks {
		if r.Disks[i].Role == role {
			return &r.Disks[i]
		}
	}
	return nil
}

// volumeFS is one filesystem found on a disk (whole disk or partition).
type volumeFS struct {
	disk      int
	dev, typ  string
	uuid, lbl string
}

// filesystemsOf lists every filesystem of the disks, whole-disk or in a
// partition.
func filesystemsOf(disks []inventory.Disk) []volumeFS {
	var all []volumeFS
	for i, d := range disks {
		if d.FS != nil {
			all = append(all, volumeFS{i, d.Path, d.FS.Type, d.FS.UUID, d.FS.Label})
		}
		for _, p := range d.Partitions {
			if p.FS != nil {
				all = append(all, volumeFS{i, p.Path, p.FS.Type, p.FS.UUID, p.FS.Label})
			}
		}
	}
	return all
}

// systemFS are the filesystem types an installed root can be on, and
// writableFS those that can hold its state (a root of any other type is
// read-only); see CanHoldState.
var (
	systemFS   = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "squashfs": true}
	writableFS = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true}
)

// Assign gives every disk its role for the release m, reading content
// through r. Where the evidence is ambiguous it asks ask, which refuses with
// the named error when unattended: never a guess.
func Assign(disks []inventory.Disk, m *release.Manifest, r Reader, ask Asker) (*Result, error) {
	res := &Result{}
	for _, d := range disks {
		res.Disks = append(res.Disks, Assignment{Disk: d, Role: Unknown})
	}
	all := filesystemsOf(disks)
	note := func(i int, format string, a ...any) {
		res.Disks[i].Reasons = append(res.Disks[i].Reasons, fmt.Sprintf(format, a...))
	}

	// The media: passeur's marker on a FAT filesystem.
	onMedia := map[int]bool{}
	for _, v := range all {
		_, marked, err := media.Is(r, v.dev, v.typ)
		if err != nil {
			note(v.disk, "could not read %s: %v", v.dev, err)
			continue
		}
		if marked {
			onMedia[v.disk] = true
			res.Disks[v.disk].Role = InstallMedia
			note(v.disk, "passeur's marker %s on %s", medialayout.Marker, v.dev)
		}
	}

	// The system: the release's recognition rules.
	type candidate struct {
		v       volumeFS
		version string
		state   string // the device laid over the root, or ""
		serr    error  // why its state cannot be read
		files   fs.FS
	}
	var systems []candidate
	taken := map[string]bool{} // devices settled: roots, volumes, set aside
	setAside := map[int]bool{} // disks of the systems the operator did not choose
	re, err := regexp.Compile(m.Recognize.VersionRegexp)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		if onMedia[v.disk] || !systemFS[v.typ] {
			continue
		}
		files, err := r.Files(v.dev, v.typ)
		if err != nil {
			note(v.disk, "could not read %s: %v", v.dev, err)
			continue
		}
		if !hasAll(files, m.Recognize.Files) {
			continue
		}
		data, err := fs.ReadFile(files, rel(m.Recognize.VersionFile))
		match := re.FindSubmatch(data)
		if err != nil || match == nil {
			refusal := fmt.Errorf("%w: %s on %s: %s does not hold a version matching %q", ErrUnreadableVersion,
				m.Product, v.dev, m.Recognize.VersionFile, m.Recognize.VersionRegexp)
			q := fmt.Sprintf("%s looks like an install of %s, but its version cannot be read from %s.", v.dev, m.Product, m.Recognize.VersionFile)
			if _, err := ask.Ask(refusal, q, []string{"set " + v.dev + " aside: treat it as unknown, never written"}); err != nil {
				return nil, err
			}
			note(v.disk, "%s: %s install of unreadable version, set aside by the operator", v.dev, m.Product)
			continue
		}
		// What the install sees: its state over its root. A state that
		// cannot be read stops the run only if this system is the one
		// migrated (the operator may set it aside).
		state, serr := stateOf(all, v, m.Recognize.StateLabel)
		if serr == nil && state == "" && m.Recognize.StateLabel != "" && !writableFS[v.typ] {
			// A read-only root keeps its fstab, configuration and index on
			// its state: read alone, it would look like a box without any.
			serr = fmt.Errorf("%w: %s %s on %s (%s), no filesystem labelled %s on its disk", ErrNoState, m.Product, match[1], v.dev, v.typ, m.Recognize.StateLabel)
		}
		if serr == nil && state != "" {
			layered, err := r.Layered(state, inventory.TypeOf(disks, state), v.dev, v.typ)
			if err != nil {
				serr = fmt.Errorf("read %s %s: its state %s over its root %s: %w", m.Product, match[1], state, v.dev, err)
			} else {
				files = layered
			}
		}
		systems = append(systems, candidate{v, string(match[1]), state, serr, files})
	}
	if len(systems) > 1 {
		var where []string
		for _, s := range systems {
			where = append(where, fmt.Sprintf("%s %s on %s (%s)", m.Product, s.version, s.v.dev, identity.Name(disks[s.v.disk])))
		}
		refusal := fmt.Errorf("%w: %s", ErrTwoSystems, strings.Join(where, ", "))
		i, err := ask.Ask(refusal, "Several disks hold an install of "+m.Product+". Which one is to be migrated? The others are never written.", where)
		if err != nil {
			return nil, err
		}
		for j, s := range systems {
			if j != i {
				note(s.v.disk, "%s %s on %s: not the one the operator chose, never written", m.Product, s.version, s.v.dev)
				taken[s.v.dev] = true
				if s.state != "" {
					taken[s.state] = true
				}
				setAside[s.v.disk] = true
				// What that system mounts is its own: no candidate.
				if entries, err := mounts(s.files); err == nil {
					for _, e := range entries {
						for _, dev := range inventory.FindAll(disks, NormalizeSpec(e.Spec)) {
							taken[dev] = true
						}
					}
				}
			}
		}
		systems = systems[i : i+1]
	}

	// The data volumes: what the system's fstab mounts where the release
	// keeps data, then filesystems carrying the release's data labels.
	var volumes []Volume
	if len(systems) == 1 && systems[0].serr != nil {
		return nil, systems[0].serr
	}
	if len(systems) == 1 {
		s := systems[0]
		a := &res.Disks[s.v.disk]
		a.Role, a.Product, a.Version, a.Root, a.State = System, m.Product, s.version, s.v.dev, s.state
		note(s.v.disk, "%s %s installed on %s (%s)", m.Product, s.version, s.v.dev, m.Recognize.VersionFile)
		taken[s.v.dev] = true
		if s.state != "" {
			note(s.v.disk, "%s: its state (label %s), read laid over its root", s.state, m.Recognize.StateLabel)
			taken[s.state] = true
		}
		mounted, err := mounts(s.files)
		if err != nil {
			return nil, err
		}
		for _, e := range mounted {
			if found := inventory.FindAll(disks, NormalizeSpec(e.Spec)); len(found) == 1 && diskOf(all, found[0]) == s.v.disk || e.Type == "swap" && len(found) == 1 {
				a.Mounts = append(a.Mounts, Mount{Device: found[0], Mountpoint: e.Mountpoint, Type: e.Type})
			}
		}
		vols, err := fstabVolumes(mounted, m.DataVolumes.FstabMountpoints, disks, all, ask, func(dev, why string) {
			note(s.v.disk, "%s", why)
			if dev != "" {
				taken[dev] = true
			}
		})
		if err != nil {
			return nil, err
		}
		for _, v := range vols {
			taken[v.Device] = true
		}
		volumes = append(volumes, vols...)
	}
	// Filesystems that carry the release's data labels but that the old
	// system does not mount are candidates: shown, reattached only when
	// the operator says so (unattended: left out).
	for _, v := range all {
		if taken[v.dev] || onMedia[v.disk] || setAside[v.disk] || v.lbl == "" || !matchAny(m.DataVolumes.LabelPatterns, v.lbl) {
			continue
		}
		vol := Volume{Device: v.dev, Spec: "LABEL=" + v.lbl, FSType: v.typ, UUID: v.uuid, Label: v.lbl}
		taken[v.dev] = true
		if len(devicesWithUUID(all, v.uuid)) > 1 || len(systems) == 0 {
			res.Candidates = append(res.Candidates, vol)
			note(v.disk, "%s carries the data label %s but is no volume of an installed system: not reattached, never written", v.dev, v.lbl)
			continue
		}
		refusal := fmt.Errorf("%w: %s (label %s)", ErrCandidate, v.dev, v.lbl)
		q := fmt.Sprintf("%s (%s, label %s, on the disk with %s) carries the release's data label, but the installed system does not mount it. Reattach it in the new system?",
			v.dev, v.typ, v.lbl, identity.Name(disks[v.disk]))
		i, err := ask.Ask(refusal, q, []string{"leave it out: never written, not reattached", "reattach it, read-only checked, never written"})
		if err != nil && (errors.Is(err, ErrOperatorQuit) || !errors.Is(err, ErrCandidate)) {
			return nil, err
		}
		if err != nil || i == 0 {
			res.Candidates = append(res.Candidates, vol)
			if res.Disks[v.disk].Role == System { // kept in place, not reattached
				res.Disks[v.disk].Candidates = append(res.Disks[v.disk].Candidates, vol)
			}
			note(v.disk, "%s carries the data label %s but the installed system does not mount it: a candidate, not reattached, never written", v.dev, v.lbl)
			continue
		}
		volumes = append(volumes, vol)
	}
	for _, vol := range volumes {
		i := diskOf(all, vol.Device)
		a := &res.Disks[i]
		a.Volumes = append(a.Volumes, vol)
		why := "label " + vol.Label + " matches the release's data labels, reattached by the operator"
		if vol.Mountpoint != "" {
			why = "mounted at " + vol.Mountpoint + " by the installed system's fstab (" + vol.Spec + ")"
		}
		switch a.Role {
		case System:
			note(i, "%s holds a data volume, %s: kept", vol.Device, why)
		case Unknown, Data:
			a.Role = Data
			note(i, "%s: %s", vol.Device, why)
		}
	}
	for i := range res.Disks {
		if res.Disks[i].Role == Unknown {
			note(i, "no passeur marker, no %s install, no data volume of it (%s): never written", m.Product, res.Disks[i].Disk.Content)
		}
	}
	return res, nil
}

// stateOf finds the filesystem an install on root lays over it: the one
// filesystem of root's disk, other than root, that carries label. None
// is an install without state (an older generation of the product); two
// cannot be told apart (ErrTwoStates).
func stateOf(all []volumeFS, root volumeFS, label string) (string, error) {
	if label == "" {
		return "", nil
	}
	var found []string
	for _, v := range all {
		if v.disk == root.disk && v.dev != root.dev && v.lbl == label && writableFS[v.typ] {
			found = append(found, v.dev)
		}
	}
	if len(found) > 1 {
		return "", fmt.Errorf("%w: %s on %s", ErrTwoStates, label, strings.Join(found, ", "))
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return "", nil
}

// fstabVolumes reads the installed system's fstab and finds each data
// volume it mounts where the release keeps data. A missing or cloned
// volume is a question for ask; note records what was settled.
func fstabVolumes(entries []fstab.Entry, globs []string, disks []inventory.Disk, all []volumeFS, ask Asker, note func(dev, why string)) ([]Volume, error) {
	var out []Volume
	for _, e := range entries {
		if !matchAny(globs, e.Mountpoint) {
			continue
		}
		found := inventory.FindAll(disks, NormalizeSpec(e.Spec))
		if len(found) == 1 {
			if fsys := inventory.FSOf(disks, found[0]); fsys != nil {
				found = devicesWithUUID(all, fsys.UUID) // a clone may carry another label
			}
		}
		var dev string
		switch len(found) {
		case 0:
			refusal := fmt.Errorf("%w: %s (%s) is on no disk", ErrMissingVolume, e.Mountpoint, e.Spec)
			q := fmt.Sprintf("The installed system mounts %s from %s, which no disk holds. Go on without it? Its recordings will be missing afterwards.", e.Mountpoint, e.Spec)
			if _, err := ask.Ask(refusal, q, []string{"go on without " + e.Mountpoint}); err != nil {
				return nil, err
			}
			note("", fmt.Sprintf("%s (%s) is on no disk: left out by the operator", e.Mountpoint, e.Spec))
			continue
		case 1:
			dev = found[0]
		default:
			refusal := fmt.Errorf("%w: %s (%s) is on %s", ErrClonedVolume, e.Mountpoint, e.Spec, strings.Join(found, ", "))
			picked, err := pickClone(ask, refusal, e.Mountpoint+" ("+e.Spec+")", found, disks, all)
			if err != nil {
				return nil, err
			}
			for _, c := range found {
				if c != picked {
					note(c, fmt.Sprintf("%s: a clone of %s, not the one the operator chose, never written", c, e.Spec))
				}
			}
			dev = picked
		}
		v := Volume{Device: dev, Spec: e.Spec, Mountpoint: e.Mountpoint, FSType: e.Type}
		if fsys := inventory.FSOf(disks, dev); fsys != nil {
			v.FSType, v.UUID, v.Label = fsys.Type, fsys.UUID, fsys.Label
		}
		out = append(out, v)
	}
	return out, nil
}

// Bounds on what is read of the old system's mount configuration.
const (
	maxMountFile  = 256 << 10
	maxMountUnits = 256
)

// mounts lists what the installed system mounts: its /etc/fstab, then its
// systemd mount units (/etc/systemd/system/*.mount), each file bounded.
func mounts(files fs.FS) ([]fstab.Entry, error) {
	var entries []fstab.Entry
	if data, err := readBounded(files, "etc/fstab"); err == nil {
		if entries, err = fstab.Parse(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	units, _ := fs.Glob(files, "etc/systemd/system/*.mount")
	if len(units) > maxMountUnits {
		return nil, fmt.Errorf("the installed system has %d mount units, more than the %d passeur reads", len(units), maxMountUnits)
	}
	for _, u := range units {
		data, err := readBounded(files, u)
		if err != nil {
			continue // a dangling link, a folder: not a unit
		}
		e, err := fstab.ParseMountUnit(bytes.NewReader(data))
		if err == nil {
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// readBounded reads a regular file of the installed system, of at most
// maxMountFile bytes.
func readBounded(files fs.FS, name string) ([]byte, error) {
	f, err := files.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxMountFile+1))
	if err == nil && len(data) > maxMountFile {
		err = fmt.Errorf("%s is larger than %d bytes", name, maxMountFile)
	}
	return data, err
}

// NormalizeSpec turns /dev/disk/by-uuid/X (and by-label, by-partuuid,
// by-partlabel) into the KEY=value form.
func NormalizeSpec(spec string) string {
	for dir, key := range map[string]string{"by-uuid": "UUID", "by-label": "LABEL", "by-partuuid": "PARTUUID", "by-partlabel": "PARTLABEL"} {
		if v, ok := strings.CutPrefix(spec, "/dev/disk/"+dir+"/"); ok {
			return key + "=" + unescapeUdev(v)
		}
	}
	return spec
}

// unescapeUdev decodes udev's \x2f-style escapes in by-label names.
func unescapeUdev(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			var c byte
			if _, err := fmt.Sscanf(s[i+2:i+4], "%02x", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasAll(files fs.FS, paths []string) bool {
	for _, p := range paths {
		if _, err := fs.Stat(files, rel(p)); err != nil {
			return false
		}
	}
	return len(paths) > 0
}

func rel(p string) string { return strings.TrimPrefix(path.Clean(p), "/") }

func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// devicesWithUUID lists the devices whose filesystem has uuid.
func devicesWithUUID(all []volumeFS, uuid string) []string {
	var out []string
	for _, v := range all {
		if uuid != "" && strings.EqualFold(v.uuid, uuid) {
			out = append(out, v.dev)
		}
	}
	return out
}

// pickClone asks which of several devices carrying the same volume is the
// real one.
func pickClone(ask Asker, refusal error, what string, devs []string, disks []inventory.Disk, all []volumeFS) (string, error) {
	var choices []string
	for _, d := range devs {
		choices = append(choices, fmt.Sprintf("%s on the disk with %s", d, identity.Name(disks[diskOf(all, d)])))
	}
	i, err := ask.Ask(refusal, "The data volume "+what+" is on several devices (a cloned disk?). Which one is the real one? The others are never written.", choices)
	if err != nil {
		return "", err
	}
	return devs[i], nil
}

func diskOf(all []volumeFS, dev string) int {
	for _, v := range all {
		if v.dev == dev {
			return v.disk
		}
	}
	return -1
}
