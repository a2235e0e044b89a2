package preflight

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/roles"
)

type fakeEnv struct {
	free    int64
	tree    int64
	badVol  string
	busyDev string
}

func (e fakeEnv) MediaFree(string) (int64, error)                   { return e.free, nil }
func (e fakeEnv) TreeSize(*roles.Assignment, string) (int64, error) { return e.tree, nil }
func (e fakeEnv) ReadVolume(v roles.Volume) error {
	if v.Device == e.badVol {
		return errors.New("mount: unknown filesystem type 'btrfs'")
	}
	return nil
}
func (e fakeEnv) Busy(dev string) error {
	if dev == e.busyDev {
		return errors.New(dev + " is busy: /dev/vda1 is mounted")
	}
	return nil
}

func manifest(t *testing.T) *release.Manifest {
	t.Helper()
	b, err := os.ReadFile("../../image/release/testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// small is the "b" appliance after roles: a 512 MiB system disk with its
// data partition at 477 MiB, a data disk, the key.
func small(version string, keyFS *fsprobe.FS, keyRO bool) *roles.Result {
	data := inventory.Partition{Path: "/dev/vda2", Number: 2, Start: 477 << 20, Size: 34 << 20, PartLabel: "data",
		FS: &fsprobe.FS{Type: "ext4", UUID: "10ca1", Label: "camrec-data"}}
	sys := inventory.Disk{Path: "/dev/vda", Size: 512 << 20, Partitions: []inventory.Partition{
		{Path: "/dev/vda1", Number: 1, Start: 1 << 20, Size: 476 << 20, FS: &fsprobe.FS{Type: "ext4"}}, data}}
	return &roles.Result{Disks: []roles.Assignment{
		{Disk: sys, Role: roles.System, Product: "camrec", Version: version, Root: "/dev/vda1",
			Volumes: []roles.Volume{{Device: "/dev/vda2", Spec: "UUID=10ca1", Mountpoint: "/srv/recordings/local", FSType: "ext4", UUID: "10ca1", Label: "camrec-data"}}},
		{Disk: inventory.Disk{Path: "/dev/vdb", FS: &fsprobe.FS{Type: "xfs", UUID: "x"}}, Role: roles.Data,
			Volumes: []roles.Volume{{Device: "/dev/vdb", Mountpoint: "/srv/recordings/d2", FSType: "xfs", UUID: "x"}}},
		{Disk: inventory.Disk{Path: "/dev/sda", ReadOnly: keyRO, Partitions: []inventory.Partition{{Path: "/dev/sda1", FS: keyFS}}}, Role: roles.InstallMedia},
	}}
}

var fat32 = &fsprobe.FS{Type: "vfat", Version: "FAT32"}

func failed(r Report) string {
	var f []string
	for _, c := range r.Checks {
		if !c.OK {
			f = append(f, c.Name)
		}
	}
	return strings.Join(f, ",")
}

func TestAllPass(t *testing.T) {
	r := Run(Input{Release: manifest(t), SignedBy: "key 1234", Roles: small("7.14.0.3", fat32, false)}, fakeEnv{free: 2 << 30, tree: 10 << 20})
	if err := r.Err(); err != nil {
		t.Fatalf("%v\n%+v", err, r.Checks)
	}
	if len(r.Checks) != 9 || !r.Rollback {
		t.Errorf("%d checks, rollback %v: %+v", len(r.Checks), r.Rollback, r.Checks)
	}
	// 1 GiB needed, 1.4 GiB free: no room for the 477 MiB overwritten.
	tight := Run(Input{Release: manifest(t), SignedBy: "key 1234", Roles: small("7.14.0.3", fat32, false)}, fakeEnv{free: 1400 << 20, tree: 10 << 20})
	if last := tight.Checks[len(tight.Checks)-1]; tight.Err() != nil || tight.Rollback || last.Name != "rollback" || !strings.Contains(last.Detail, "not available") {
		t.Errorf("tight media: rollback %v, %+v", tight.Rollback, last)
	}
	for _, c := range r.Checks {
		if c.Detail == "" {
			t.Errorf("check %s says nothing", c.Name)
		}
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *roles.Result
		env  fakeEnv
		want string
	}{
		{"old version", small("7.12.0.4", fat32, false), fakeEnv{free: 2 << 30}, "source version"},
		{"key not FAT32", small("7.14.0.3", &fsprobe.FS{Type: "vfat", Version: "FAT16"}, false), fakeEnv{free: 2 << 30}, "install media"},
		{"key read-only", small("7.14.0.3", fat32, true), fakeEnv{free: 2 << 30}, "install media"},
		{"key nearly full", small("7.14.0.3", fat32, false), fakeEnv{free: 100 << 20, tree: 60 << 20}, "media free space"},
		{"backup larger than the key", small("7.14.0.3", fat32, false), fakeEnv{free: 2 << 30, tree: 3 << 30}, "media free space"},
		{"unreadable data volume", small("7.14.0.3", fat32, false), fakeEnv{free: 2 << 30, badVol: "/dev/vdb"}, "data volume /srv/recordings/d2"},
		{"busy target", small("7.14.0.3", fat32, false), fakeEnv{free: 2 << 30, busyDev: "/dev/vda"}, "target not busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(Input{Release: manifest(t), Roles: tc.in}, tc.env)
			if got := failed(r); got != tc.want {
				t.Errorf("failed checks %q, want %q\n%+v", got, tc.want, r.Checks)
			}
			if !errors.Is(r.Err(), ErrFailed) {
				t.Errorf("Err = %v", r.Err())
			}
		})
	}
}

func TestTargetTooSmall(t *testing.T) {
	in := small("7.14.0.3", fat32, false)
	in.Disks[0].Disk.Size = 200 << 20
	in.Disks[0].Disk.Partitions[1].Start = 150 << 20
	r := Run(Input{Release: manifest(t), Roles: in}, fakeEnv{free: 2 << 30})
	if got := failed(r); got != "target layout" || !strings.Contains(r.Err().Error(), release.ErrTooLarge.Error()) {
		t.Errorf("failed %q: %v", got, r.Err())
	}
}

// TestBackupOnly checks a run with only the rescue image's profile: the
// release's own checks are not made (7.12 is out of camrec 8's range,
// which a backup does not care about), the media and volumes still are.
func TestBackupOnly(t *testing.T) {
	p := manifest(t).Profile()
	r := Run(Input{Release: p.Manifest(), Roles: small("7.12.0.4", fat32, false), BackupOnly: true}, fakeEnv{free: 2 << 30, tree: 10 << 20})
	if err := r.Err(); err != nil {
		t.Fatalf("%v\n%+v", err, r.Checks)
	}
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "release,install media,media free space,data volume /srv/recordings/local,data volume /srv/recordings/d2" {
		t.Errorf("checks %s", got)
	}
	r = Run(Input{Release: p.Manifest(), Roles: small("7.12.0.4", fat32, true), BackupOnly: true}, fakeEnv{free: 2 << 30})
	if got := failed(r); got != "install media" {
		t.Errorf("read-only key: failed %q", got)
	}
}

// TestBackupOnlyWithRelease: a backup with a release on the key whose
// range does not hold the installed version (7.12) is not refused, and
// Migratable says why no plan is kept.
func TestBackupOnlyWithRelease(t *testing.T) {
	m := manifest(t)
	in := small("7.12.0.4", fat32, false)
	r := Run(Input{Release: m, SignedBy: "key 1234", Roles: in, BackupOnly: true}, fakeEnv{free: 2 << 30, tree: 10 << 20})
	if err := r.Err(); err != nil || r.Checks[0].Name != "release signature" || len(r.Checks) != 5 {
		t.Fatalf("%v\n%+v", err, r.Checks)
	}
	if _, err := Migratable(m, in.System()); err == nil || !strings.Contains(err.Error(), "cannot be migrated") {
		t.Errorf("Migratable of 7.12: %v", err)
	}
	if pl, err := Migratable(m, small("7.14.0.3", fat32, false).System()); err != nil || len(pl.Extents) != 4 || pl.Table != "gpt" {
		t.Errorf("Migratable of 7.14: %v %v", pl, err)
	}
}

// TestAccountedFor: a filesystem on the system disk that is neither kept
// nor the old system's own is a refusal; a candidate carrying a data label
// is kept in place; swap, an ESP, a /var are the old system's.
func TestAccountedFor(t *testing.T) {
	m := manifest(t)
	extra := func(fs *fsprobe.FS, partType string) *roles.Assignment {
		sys := small("7.14.0.3", fat32, false).System()
		sys.Disk.Size = 2 << 30
		sys.Disk.Partitions = append(sys.Disk.Partitions, inventory.Partition{Path: "/dev/vda3", Number: 3, Start: 600 << 20, Size: 64 << 20, PartType: partType, FS: fs})
		return sys
	}
	for name, tc := range map[string]struct {
		sys  *roles.Assignment
		want error
	}{
		"unmounted xfs": {extra(&fsprobe.FS{Type: "xfs", Label: "archive"}, "83"), ErrDataInTheWay},
		"home": {func() *roles.Assignment {
			s := extra(&fsprobe.FS{Type: "ext4", Label: "home"}, "83")
			s.Mounts = []roles.Mount{{Device: "/dev/vda3", Mountpoint: "/home", Type: "ext4"}}
			return s
		}(), ErrDataInTheWay},
		"var": {func() *roles.Assignment {
			s := extra(&fsprobe.FS{Type: "ext4", Label: "var"}, "83")
			s.Mounts = []roles.Mount{{Device: "/dev/vda3", Mountpoint: "/var", Type: "ext4"}}
			return s
		}(), nil},
		"the system's state": {func() *roles.Assignment {
			s := extra(&fsprobe.FS{Type: "ext4", Label: "state"}, "83")
			s.State = "/dev/vda3"
			return s
		}(), nil},
		"a state that is not the system's": {extra(&fsprobe.FS{Type: "ext4", Label: "state"}, "83"), ErrDataInTheWay},
		"swap":                             {extra(&fsprobe.FS{Type: "swap"}, "82"), nil},
		"old esp":                          {extra(&fsprobe.FS{Type: "vfat"}, release.TypeGUIDs["esp"]), nil},
		"no filesystem":                    {extra(nil, "83"), nil},
		"a candidate kept": {func() *roles.Assignment {
			s := extra(&fsprobe.FS{Type: "ext4", Label: "rec-old", UUID: "01d"}, "83")
			s.Candidates = []roles.Volume{{Device: "/dev/vda3", Spec: "LABEL=rec-old", FSType: "ext4", UUID: "01d", Label: "rec-old"}}
			return s
		}(), nil},
	} {
		pl, err := Layout(m, tc.sys)
		if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
			t.Errorf("%s: Layout = %v, want %v", name, err, tc.want)
		}
		if name == "a candidate kept" && err == nil {
			kept := 0
			for _, e := range pl.Extents {
				if e.Role == release.RoleKeep && e.Start == 600<<20 {
					kept++
				}
			}
			if kept != 1 {
				t.Errorf("the candidate on the system disk is not kept: %+v", pl.Extents)
			}
		}
	}
}

// TestRoute checks a route passed without boots: 7.14.0.3 → 8.0.0 →
// 8.1.0, 8.0.0 not booted, each release in the next's migrate_from and
// 8.0.0's layout placed on the disk, or the run refused at "source
// version" naming the hop.
func TestRoute(t *testing.T) {
	release8 := func(v, from string) *release.Manifest {
		m := manifest(t)
		var err error
		if m.Version, err = version.Parse(v); err != nil {
			t.Fatal(err)
		}
		r, err := version.ParseRange(from)
		if err != nil {
			t.Fatal(err)
		}
		m.MigrateFrom = &r
		return m
	}
	huge := release8("8.0.0", "==7.14.0.3")
	huge.Layout.Partitions = slices.Clone(huge.Layout.Partitions)
	huge.Layout.Partitions[1].Size.Bytes = 1 << 30
	other := release8("8.0.0", "==7.14.0.3")
	other.Product = "other"
	for _, tc := range []struct {
		name    string
		through *release.Manifest
		final   string // migrate_from of 8.1.0
		want    string // in the refusal; "" for none
	}{
		{"each in the next's range", release8("8.0.0", "==7.14.0.2 || ==7.14.0.3"), "==8.0.0", ""},
		{"the hop does not take the installed version", release8("8.0.0", "==7.14.0.2"), "==8.0.0", "camrec 7.14.0.3 cannot be migrated to 8.0.0"},
		{"the last does not take the hop", release8("8.0.0", "==7.14.0.3"), "==7.14.0.3", "camrec 8.0.0 cannot be migrated to 8.1.0"},
		{"the hop's layout is too large", huge, "==8.0.0", "passes 8.0.0, whose layout would not go on this disk"},
		{"another product", other, "==8.0.0", "passes other 8.0.0, another product"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			final := release8("8.1.0", tc.final)
			r := Run(Input{Release: final, Roles: small("7.14.0.3", fat32, false), Through: []*release.Manifest{tc.through}}, fakeEnv{free: 2 << 30, tree: 10 << 20})
			var c Check
			for _, c = range r.Checks {
				if c.Name == "source version" {
					break
				}
			}
			if tc.want == "" {
				if err := r.Err(); err != nil || c.Detail != "camrec 7.14.0.3 → 8.0.0 → 8.1.0, each in the next's migrate_from; 8.0.0 passed without a boot" {
					t.Errorf("%v; source version %+v", err, c)
				}
				return
			}
			if got := failed(r); got != "source version" || !strings.Contains(c.Detail, tc.want) {
				t.Errorf("failed %q, source version %+v; want it to say %q", got, c, tc.want)
			}
		})
	}
	// Without the route, 8.1.0 (from 8.0.0 only) refuses 7.14.0.3.
	r := Run(Input{Release: release8("8.1.0", "==8.0.0"), Roles: small("7.14.0.3", fat32, false)}, fakeEnv{free: 2 << 30, tree: 10 << 20})
	if got := failed(r); got != "source version" {
		t.Errorf("no route: failed %q", got)
	}
}
