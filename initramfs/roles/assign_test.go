package roles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
)

// mapReader serves each device's files from a map.
type mapReader map[string]fstest.MapFS

func (m mapReader) Files(dev, typ string) (fs.FS, error) {
	if f, ok := m[dev]; ok {
		return f, nil
	}
	return fstest.MapFS{}, nil
}

func (m mapReader) Layered(upper, upperType, lower, lowerType string) (fs.FS, error) {
	up, _ := m.Files(upper, upperType)
	low, _ := m.Files(lower, lowerType)
	return union{up, low}, nil
}

// union is an overlay of two folders as the kernel shows it: a name in
// the upper one hides the same name in the lower one; folders merge.
type union struct{ upper, lower fs.FS }

func (u union) Open(name string) (fs.File, error) {
	f, err := u.upper.Open(name)
	if err == nil {
		return f, nil
	}
	return u.lower.Open(name)
}

func (u union) ReadDir(name string) ([]fs.DirEntry, error) {
	up, errUp := fs.ReadDir(u.upper, name)
	low, errLow := fs.ReadDir(u.lower, name)
	if errUp != nil && errLow != nil {
		return nil, errUp
	}
	seen := map[string]bool{}
	for _, e := range up {
		seen[e.Name()] = true
	}
	for _, e := range low {
		if !seen[e.Name()] {
			up = append(up, e)
		}
	}
	slices.SortFunc(up, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return up, nil
}

func manifest(t *testing.T) *release.Manifest {
	t.Helper()
	data, err := os.ReadFile("../../image/release/testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	m.DataVolumes.FstabMountpoints = []string{"/srv/recordings/*"}
	m.DataVolumes.LabelPatterns = []string{"camrec-data"}
	return m
}

func ext4(uuid, label string) *fsprobe.FS { return &fsprobe.FS{Type: "ext4", UUID: uuid, Label: label} }

// smallLayout is the "b" appliance: a system disk with a data partition,
// an ext4 data disk by LABEL, an xfs data disk by UUID; plus the passeur
// key and a disk of someone else's.
func smallLayout() ([]inventory.Disk, mapReader) {
	disks := []inventory.Disk{
		{Name: "vda", Path: "/dev/vda", Serial: "SYS", Table: &inventory.Table{Type: "gpt", ID: "g1"}, Partitions: []inventory.Partition{
			{Path: "/dev/vda1", PartLabel: "root", PartUUID: "p1", FS: ext4("r00t", "camrec-root")},
			{Path: "/dev/vda2", PartLabel: "data", PartUUID: "p2", FS: ext4("10ca1", "camrec-data")},
		}},
		{Name: "vdb", Path: "/dev/vdb", Serial: "D1", Partitions: []inventory.Partition{{Path: "/dev/vdb1", FS: ext4("bbbb", "rec-b")}}},
		{Name: "vdc", Path: "/dev/vdc", Serial: "D2", FS: &fsprobe.FS{Type: "xfs", UUID: "xxxx", Label: "rec-xfs"}},
		{Name: "sda", Path: "/dev/sda", Serial: "KEY", Partitions: []inventory.Partition{{Path: "/dev/sda1", FS: &fsprobe.FS{Type: "vfat", UUID: "AB-CD", Label: "PASSEUR"}}}},
		{Name: "sdb", Path: "/dev/sdb", Serial: "OTHER", FS: ext4("0ther", "backup")},
	}
	r := mapReader{
		"/dev/vda1": {
			"etc/camrec/camrec.conf": {Data: []byte("[recorder]\n")},
			"etc/camrec/version":     {Data: []byte("camrec 7.14.0.3\n")},
			"etc/fstab": {Data: []byte("UUID=r00t / ext4 defaults 0 1\nUUID=10ca1 /srv/recordings/local ext4 defaults 0 2\n" +
				"LABEL=rec-b /srv/recordings/d1 ext4 defaults 0 2\n/dev/disk/by-uuid/xxxx /srv/recordings/d2 xfs defaults 0 2\n" +
				"UUID=0ther /mnt/backup ext4 noauto 0 0\n")},
		},
		"/dev/sda1": {medialayout.Marker: {Data: []byte("{}")}},
		"/dev/sdb":  {"etc/hostname": {Data: []byte("elsewhere\n")}},
	}
	return disks, r
}

func roleTable(r *Result) string {
	var rows []string
	for _, a := range r.Disks {
		rows = append(rows, fmt.Sprintf("%s=%s", a.Disk.Serial, a.Role))
	}
	slices.Sort(rows)
	return strings.Join(rows, " ")
}

func TestAssignSmallLayout(t *testing.T) {
	disks, r := smallLayout()
	res, err := Assign(disks, manifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := roleTable(res), "D1=data D2=data KEY=install-media OTHER=unknown SYS=system"; got != want {
		t.Errorf("roles %s, want %s", got, want)
	}
	sys := res.System()
	if sys.Version != "7.14.0.3" || sys.Root != "/dev/vda1" || len(sys.Volumes) != 1 || sys.Volumes[0].Device != "/dev/vda2" {
		t.Errorf("system = %+v", sys)
	}
	for _, a := range res.Disks {
		if len(a.Reasons) == 0 {
			t.Errorf("%s has no reason", a.Disk.Serial)
		}
		if a.Disk.Serial == "D2" && (a.Volumes[0].Spec != "/dev/disk/by-uuid/xxxx" || a.Volumes[0].Mountpoint != "/srv/recordings/d2") {
			t.Errorf("xfs volume = %+v", a.Volumes[0])
		}
	}
	// The same disks in another order get the same roles.
	rev := slices.Clone(disks)
	slices.Reverse(rev)
	res2, err := Assign(rev, manifest(t), r, Unattended{})
	if err != nil || roleTable(res2) != roleTable(res) {
		t.Errorf("reversed order: %s, %v", roleTable(res2), err)
	}
}

func TestAssignRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func([]inventory.Disk, mapReader) []inventory.Disk
		want   error
	}{
		{"two systems", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			r["/dev/sdb"] = r["/dev/vda1"]
			return d
		}, ErrTwoSystems},
		{"missing data disk", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			return slices.Delete(d, 1, 2) // the rec-b disk
		}, ErrMissingVolume},
		{"cloned data disk", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			return append(d, inventory.Disk{Path: "/dev/vdd", Serial: "CLONE", FS: &fsprobe.FS{Type: "xfs", UUID: "xxxx", Label: "rec-xfs"}})
		}, ErrClonedVolume},
		{"cloned data partition by label", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			return append(d, inventory.Disk{Path: "/dev/vdd", Serial: "CLONE", FS: ext4("10ca1", "camrec-data")})
		}, ErrClonedVolume},
		{"unreadable version", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			r["/dev/vda1"]["etc/camrec/version"] = &fstest.MapFile{Data: []byte("garbage\n")}
			return d
		}, ErrUnreadableVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disks, r := smallLayout()
			disks = tc.change(disks, r)
			if _, err := Assign(disks, manifest(t), r, Unattended{}); !errors.Is(err, tc.want) {
				t.Errorf("Assign = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNoSystemIsFreshInstall(t *testing.T) {
	disks, r := smallLayout()
	delete(r, "/dev/vda1")
	res, err := Assign(disks, manifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if res.System() != nil || res.Media() == nil {
		t.Errorf("roles %s: want no system, the media found", roleTable(res))
	}
	// Without an installed system a data label makes a candidate only.
	if got := roleTable(res); got != "D1=unknown D2=unknown KEY=install-media OTHER=unknown SYS=unknown" {
		t.Errorf("roles %s", got)
	}
	if len(res.Candidates) != 1 || res.Candidates[0].Device != "/dev/vda2" {
		t.Errorf("candidates %+v, want /dev/vda2", res.Candidates)
	}
}

// TestLabelAloneIsACandidate: a disk of another machine whose filesystem
// carries a data label, absent from the old fstab, is never reattached
// unattended; attended, the operator may add it.
func TestLabelAloneIsACandidate(t *testing.T) {
	stray := inventory.Disk{Name: "vde", Path: "/dev/vde", Serial: "STRAY", FS: ext4("57a7", "camrec-data")}
	disks, r := smallLayout()
	res, err := Assign(append(disks, stray), manifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if got := roleTable(res); got != "D1=data D2=data KEY=install-media OTHER=unknown STRAY=unknown SYS=system" {
		t.Errorf("unattended: roles %s", got)
	}
	if len(res.Candidates) != 1 || res.Candidates[0].Device != "/dev/vde" {
		t.Errorf("unattended: candidates %+v", res.Candidates)
	}
	for _, answer := range []int{0, 1} {
		disks, r := smallLayout()
		s := &script{answers: []int{answer}}
		res, err := Assign(append(disks, stray), manifest(t), r, s)
		if err != nil || len(s.questions) != 1 {
			t.Fatalf("attended: %v, questions %q", err, s.questions)
		}
		role := res.Disks[len(res.Disks)-1].Role
		if answer == 0 && (role != Unknown || len(res.Candidates) != 1) || answer == 1 && (role != Data || len(res.Candidates) != 0) {
			t.Errorf("answer %d: role %s, candidates %+v", answer, role, res.Candidates)
		}
	}
}

func TestNormalizeSpec(t *testing.T) {
	for in, want := range map[string]string{
		"/dev/disk/by-uuid/ab-cd":       "UUID=ab-cd",
		`/dev/disk/by-label/My\x20Disk`: "LABEL=My Disk",
		"/dev/disk/by-partuuid/0a0b-01": "PARTUUID=0a0b-01",
		"/dev/disk/by-partlabel/data":   "PARTLABEL=data",
		"UUID=x":                        "UUID=x",
		"/dev/sdb1":                     "/dev/sdb1",
	} {
		if got := NormalizeSpec(in); got != want {
			t.Errorf("NormalizeSpec(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestMountUnitVolume: a volume the old system mounts by a systemd mount
// unit, not by fstab, is one of its data volumes.
func TestMountUnitVolume(t *testing.T) {
	disks, r := smallLayout()
	disks = append(disks, inventory.Disk{Name: "vde", Path: "/dev/vde", Serial: "NAS", FS: ext4("5a5a", "nvr-nas")})
	r["/dev/vda1"]["etc/systemd/system/srv-recordings-nas.mount"] = &fstest.MapFile{Data: []byte("[Mount]\nWhat=UUID=5a5a\nWhere=/srv/recordings/nas\nType=ext4\n")}
	r["/dev/vda1"]["etc/systemd/system/backup.mount"] = &fstest.MapFile{Data: []byte("[Mount]\nWhat=UUID=0ther\nWhere=/mnt/backup\n")}
	res, err := Assign(disks, manifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if got := roleTable(res); got != "D1=data D2=data KEY=install-media NAS=data OTHER=unknown SYS=system" {
		t.Errorf("roles %s", got)
	}
}

// layeredLayout is an install of the product's next generation: a
// squashfs root (no label, no UUID) that holds the version, and a "state"
// filesystem laid over it that holds the fstab of its data volumes.
func layeredLayout() ([]inventory.Disk, mapReader) {
	disks := []inventory.Disk{
		{Name: "vda", Path: "/dev/vda", Serial: "SYS", Table: &inventory.Table{Type: "gpt", ID: "g1"}, Partitions: []inventory.Partition{
			{Path: "/dev/vda1", PartLabel: "esp", FS: &fsprobe.FS{Type: "vfat", UUID: "12-34", Label: "ESP"}},
			{Path: "/dev/vda2", PartLabel: "root", FS: &fsprobe.FS{Type: "squashfs"}},
			{Path: "/dev/vda3", PartLabel: "state", FS: ext4("57a7e", "state")},
			{Path: "/dev/vda4", PartLabel: "data", FS: ext4("10ca1", "camrec-data")},
		}},
		{Name: "vdb", Path: "/dev/vdb", Serial: "D1", FS: ext4("bbbb", "rec-b")},
		{Name: "sda", Path: "/dev/sda", Serial: "KEY", Partitions: []inventory.Partition{{Path: "/dev/sda1", FS: &fsprobe.FS{Type: "vfat", UUID: "AB-CD", Label: "PASSEUR"}}}},
	}
	r := mapReader{
		"/dev/vda2": {
			"etc/camrec/version": {Data: []byte("camrec 8.1.0\n")},
			// The root's own fstab is hidden by the state's.
			"etc/fstab": {Data: []byte("LABEL=gone /srv/recordings/old ext4 defaults 0 2\n")},
		},
		"/dev/vda3": {
			"etc/fstab":          {Data: []byte("UUID=10ca1 /srv/recordings/local ext4 defaults,nofail 0 2\nLABEL=rec-b /srv/recordings/d1 ext4 defaults,nofail 0 2\n")},
			"camrec/config.json": {Data: []byte("{}")},
		},
		"/dev/sda1": {medialayout.Marker: {Data: []byte("{}")}},
	}
	return disks, r
}

func layeredManifest(t *testing.T) *release.Manifest {
	m := manifest(t)
	m.Recognize.Files = []string{"/etc/camrec/version"}
	m.Recognize.StateLabel = "state"
	return m
}

func TestAssignLayeredInstall(t *testing.T) {
	disks, r := layeredLayout()
	res, err := Assign(disks, layeredManifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := roleTable(res), "D1=data KEY=install-media SYS=system"; got != want {
		t.Errorf("roles %s, want %s", got, want)
	}
	sys := res.System()
	if sys.Version != "8.1.0" || sys.Root != "/dev/vda2" || sys.State != "/dev/vda3" {
		t.Fatalf("system = %+v", sys)
	}
	// The data volumes are those of the state's fstab, not the root's.
	if len(sys.Volumes) != 1 || sys.Volumes[0].Device != "/dev/vda4" || sys.Volumes[0].Mountpoint != "/srv/recordings/local" {
		t.Errorf("system volumes %+v, want /dev/vda4 at /srv/recordings/local", sys.Volumes)
	}
	// What the install sees is the state over the root.
	files, err := sys.Files(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"etc/camrec/version": "camrec 8.1.0\n", "camrec/config.json": "{}"} {
		if b, err := fs.ReadFile(files, name); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	// The state is the system's, never a candidate nor a data volume.
	for _, c := range res.Candidates {
		if c.Device == "/dev/vda3" {
			t.Errorf("state offered as a candidate: %+v", c)
		}
	}
	// A read-only root without its state cannot be read for what it
	// keeps: refused, not taken for a box without data.
	withoutState := slices.Clone(disks)
	withoutState[0].Partitions = slices.Delete(slices.Clone(disks[0].Partitions), 2, 3)
	if _, err := Assign(withoutState, layeredManifest(t), r, Unattended{}); !errors.Is(err, ErrNoState) {
		t.Errorf("squashfs root without its state: %v, want %v", err, ErrNoState)
	}
	// An install of the older generation (a writable root, no state) is
	// read as before: its root's fstab.
	r["/dev/vda2"]["etc/fstab"] = r["/dev/vda3"]["etc/fstab"]
	withoutState[0].Partitions[1].FS = ext4("r00t", "")
	res, err = Assign(withoutState, layeredManifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if sys := res.System(); sys.State != "" || sys.Root != "/dev/vda2" || len(sys.Volumes) != 1 {
		t.Errorf("without state: system = %+v", sys)
	}
}

func TestAssignTwoStates(t *testing.T) {
	disks, r := layeredLayout()
	disks[0].Partitions = append(disks[0].Partitions, inventory.Partition{Path: "/dev/vda5", FS: ext4("57a7f", "state")})
	if _, err := Assign(disks, layeredManifest(t), r, Unattended{}); !errors.Is(err, ErrTwoStates) {
		t.Errorf("Assign = %v, want %v", err, ErrTwoStates)
	}
	// A "state" on another disk is not this system's state.
	disks, r = layeredLayout()
	disks = append(disks, inventory.Disk{Name: "vdc", Path: "/dev/vdc", Serial: "OTHER", FS: ext4("57a80", "state")})
	res, err := Assign(disks, layeredManifest(t), r, Unattended{})
	if err != nil {
		t.Fatal(err)
	}
	if sys := res.System(); sys.State != "/dev/vda3" {
		t.Errorf("state %q, want /dev/vda3", sys.State)
	}
}

// TestStateOfASystemSetAside: a second install whose state cannot be
// told (two "state" filesystems) stops nothing when the operator sets it
// aside; chosen, it is refused.
func TestStateOfASystemSetAside(t *testing.T) {
	disks, r := layeredLayout()
	disks = append(disks, inventory.Disk{Name: "vdc", Path: "/dev/vdc", Serial: "SYS2", Table: &inventory.Table{Type: "gpt", ID: "g2"}, Partitions: []inventory.Partition{
		{Path: "/dev/vdc1", FS: &fsprobe.FS{Type: "squashfs"}},
		{Path: "/dev/vdc2", FS: ext4("5a", "state")},
		{Path: "/dev/vdc3", FS: ext4("5b", "state")},
	}})
	r["/dev/vdc1"] = r["/dev/vda2"]
	for _, tc := range []struct {
		answer int
		want   error
	}{{0, nil}, {1, ErrTwoStates}} {
		res, err := Assign(disks, layeredManifest(t), r, &script{answers: []int{tc.answer}})
		if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
			t.Errorf("operator chose %d: %v, want %v", tc.answer, err, tc.want)
		}
		if err == nil && (res.System().Root != "/dev/vda2" || roleTable(res) != "D1=data KEY=install-media SYS2=unknown SYS=system") {
			t.Errorf("operator chose %d: %s, system %+v", tc.answer, roleTable(res), res.System())
		}
	}
}
