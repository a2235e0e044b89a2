package migrate

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/ptable"
)

func tool(t *testing.T, name string) {
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s: %v", name, err)
	}
}

// TestTableAndFilesystem lays a job on a disk image holding a kept region:
// sfdisk reads the table back as written, e2fsck finds the made ext4
// clean, and the kept region's bytes are untouched.
func TestTableAndFilesystem(t *testing.T) {
	tool(t, "sfdisk")
	tool(t, "e2fsck")
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	kept := make([]byte, 8<<20)
	rand.Read(kept)
	f.WriteAt(kept, 40<<20)

	m := &release.Manifest{Product: "p", State: "state", Layout: release.Layout{Table: "gpt", Partitions: []release.Partition{
		{Name: "esp", Type: "esp", Size: release.Size{Bytes: 8 << 20}, Role: release.RoleArtifact, Artifact: "esp"},
		{Name: "state", Type: "linux-generic", Size: release.Size{Bytes: 16 << 20}, Role: release.RoleEmpty, Filesystem: "ext4"},
		{Name: "data", Type: "srv", Size: release.Size{Rest: true}, Role: release.RoleKeep, KeepLabel: "d"},
	}}}
	ext, err := m.Layout.PlaceKeeping(size, map[string]release.Extent{"data": {Start: 40 << 20, Bytes: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	sys := inventory.Disk{Path: "/dev/vda", Serial: "S1", Size: size, Partitions: []inventory.Partition{{Start: 40 << 20, Size: 8 << 20, PartUUID: "AAAAAAAA-0000-4000-8000-000000000001"}}}
	pl := release.Placement{Table: "gpt", Extents: ext}
	j, err := NewJob("migrate", "releases/p-1", "x", m, sys, pl, nil, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := NewJob("migrate", "releases/p-1", "x", m, sys, pl, nil, "run-1"); again.DiskGUID != j.DiskGUID || again.StateUUID != j.StateUUID || again.TableSHA256 != j.TableSHA256 {
		t.Error("the same run gives other identifiers")
	}
	st, _ := j.Extent("state")
	if err := MakeFilesystem(f, st, j.StateUUID); err != nil {
		t.Fatal(err)
	}
	if err := j.WriteTable(f); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sfdisk", "-d", path).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk -d: %v\n%s", err, out)
	}
	dump := strings.ToLower(string(out))
	for _, e := range j.Extents {
		typ, _ := e.TypeGUID()
		want := strings.ToLower(strings.Join([]string{"start=" + itoa(e.Start/512), "size=" + itoa(e.Bytes/512), "type=" + typ, "uuid=" + e.UUID, "name=\"" + e.Name + "\""}, ", "))
		if !strings.Contains(strings.ReplaceAll(dump, " ", ""), strings.ReplaceAll(want, " ", "")) {
			t.Errorf("sfdisk -d lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(dump, "label-id: "+j.DiskGUID) || !strings.Contains(dump, "uuid=aaaaaaaa-0000-4000-8000-000000000001") {
		t.Errorf("disk GUID or the kept partition's old PARTUUID missing:\n%s", out)
	}
	tab, err := ptable.Read(f, 512)
	if err != nil || tab == nil || len(tab.Partitions) != 3 {
		t.Fatalf("ptable.Read = %+v, %v", tab, err)
	}
	got := make([]byte, len(kept))
	f.ReadAt(got, 40<<20)
	if !bytes.Equal(got, kept) {
		t.Error("the kept partition changed")
	}
	fsImg := filepath.Join(t.TempDir(), "state.img")
	region := make([]byte, st.Bytes)
	f.ReadAt(region, st.Start)
	os.WriteFile(fsImg, region, 0o644)
	if out, err := exec.Command("e2fsck", "-fn", fsImg).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	if out, _ := exec.Command("blkid", "-o", "export", fsImg).CombinedOutput(); !strings.Contains(string(out), "UUID="+j.StateUUID) || !strings.Contains(string(out), "LABEL=state") {
		t.Errorf("blkid: %s", out)
	}

	// The target is found again by serial, not by path; without serial by
	// its old or new table identifier.
	again := inventory.Disk{Path: "/dev/vdb", Serial: "S1", Size: size}
	if !j.Target.Matches(again) || j.Target.Matches(inventory.Disk{Serial: "S2", Size: size}) {
		t.Error("serial matching")
	}
	anon := identity.Disk{Size: size, OldTable: "old", NewTable: j.DiskGUID}
	if !anon.Matches(inventory.Disk{Size: size, Table: &inventory.Table{ID: strings.ToUpper(j.DiskGUID)}}) || anon.Matches(inventory.Disk{Size: size}) {
		t.Error("table matching")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLateStepsCheckedFirst: what a late step could only fail on is a
// refusal when the job is made, before any write.
func TestLateStepsCheckedFirst(t *testing.T) {
	const size = 64 << 20
	sys := inventory.Disk{Path: "/dev/vda", Serial: "S1", Size: size, SectorSize: 512, Table: &inventory.Table{Type: "dos", ID: "7c0ffee7"}}
	part := func(name, typ string, mib int64, role, fs string) release.Partition {
		return release.Partition{Name: name, Type: typ, Size: release.Size{Bytes: mib << 20}, Role: role, Filesystem: fs, Artifact: name,
			UUID: release.StableUUID(name)}
	}
	for name, tc := range map[string]struct {
		table string
		parts []release.Partition
	}{
		"xfs state":          {"gpt", []release.Partition{part("esp", "esp", 8, release.RoleArtifact, ""), part("state", "linux-generic", 16, release.RoleEmpty, "xfs")}},
		"tiny state":         {"gpt", []release.Partition{part("esp", "esp", 8, release.RoleArtifact, ""), {Name: "state", Type: "linux-generic", Size: release.Size{Bytes: 1 << 20}, Role: release.RoleEmpty, Filesystem: "ext4"}}},
		"mbr without an esp": {"dos", []release.Partition{part("root", "root-x86-64", 8, release.RoleArtifact, ""), part("state", "linux-generic", 16, release.RoleEmpty, "ext4")}},
	} {
		m := &release.Manifest{Product: "p", Layout: release.Layout{Table: "gpt", Partitions: tc.parts}}
		first, end := ptable.Usable(tc.table, ptable.Geometry{Size: size, SectorSize: 512})
		ext, err := m.Layout.PlaceIn(size, release.Region{Table: tc.table, Start: first, End: end}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewJob("migrate", "r", "x", m, sys, release.Placement{Table: tc.table, Extents: ext}, nil, "run"); !errors.Is(err, ErrLateStep) {
			t.Errorf("%s: NewJob = %v, want ErrLateStep", name, err)
		}
	}
}
