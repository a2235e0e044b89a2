package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/roles"
)

func checkFixture(t *testing.T) (*release.Manifest, inventory.Disk, *Job) {
	t.Helper()
	const size = 64 << 20
	m := &release.Manifest{Product: "p", State: "state", Layout: release.Layout{Table: "gpt", Partitions: []release.Partition{
		{Name: "esp", Type: "esp", Size: release.Size{Bytes: 8 << 20}, Role: release.RoleArtifact, Artifact: "esp"},
		{Name: "state", Type: "linux-generic", Size: release.Size{Bytes: 16 << 20}, Role: release.RoleEmpty, Filesystem: "ext4"},
		{Name: "data", Type: "srv", Size: release.Size{Rest: true}, Role: release.RoleKeep, KeepLabel: "d"},
	}}, DataVolumes: release.DataVolumes{LabelPatterns: []string{"nvr-*"}}}
	sys := inventory.Disk{Path: "/dev/vda", Serial: "S1", Size: size, Table: &inventory.Table{Type: "gpt", ID: "11111111-2222-4333-8444-555555555555"},
		Partitions: []inventory.Partition{{Number: 1, Start: 1 << 20, Size: 30 << 20}, {Number: 2, Start: 40 << 20, Size: 8 << 20, PartUUID: "aaaaaaaa-0000-4000-8000-000000000001"}}}
	ext, err := m.Layout.PlaceKeeping(size, map[string]release.Extent{"data": {Start: 40 << 20, Bytes: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJob("migrate", "releases/p-1", "sum", m, sys, release.Placement{Table: "gpt", Extents: ext}, nil, "run-1\x00box")
	if err != nil {
		t.Fatal(err)
	}
	return m, sys, j
}

// TestCheckJob: a journaled job is taken up only when it is the job
// passeur computes now; every way a journal can lie is named.
func TestCheckJob(t *testing.T) {
	m, sys, j := checkFixture(t)
	if err := j.Check(m, "sum", "run-1\x00box", sys, OldTable); err != nil {
		t.Fatalf("the job as made: %v", err)
	}
	moved := sys
	moved.Path = "/dev/sdb" // names change between boots; the job does not care
	if err := j.Check(m, "sum", "run-1\x00box", moved, OldTable); err != nil {
		t.Fatalf("the same disk under another name: %v", err)
	}
	other := sys
	other.Table = &inventory.Table{Type: "gpt", ID: "99999999-2222-4333-8444-555555555555"}
	for name, c := range map[string]struct {
		edit func(*Job)
		disk inventory.Disk
		seed string
		sum  string
		want string
	}{
		"another manifest":           {sum: "other", want: "manifest"},
		"another seed":               {seed: "run-2\x00box", want: "new_table"},
		"a disk of the same serial":  {disk: other, want: "old_table"},
		"another serial":             {edit: func(j *Job) { j.Target.Serial = "S2" }, want: "writes"},
		"an extent moved":            {edit: func(j *Job) { j.Extents[1].Start += 1 << 20 }, want: "extents"},
		"an artifact swapped":        {edit: func(j *Job) { j.Extents[0].Artifact = "rootfs" }, want: "extents"},
		"a kept partition invented":  {edit: func(j *Job) { j.Extents[2].Start = 48 << 20 }, want: "no partition"},
		"a keep not in the layout":   {edit: func(j *Job) { j.Extents[2].Name = "other" }, want: "not in the release's layout"},
		"a disk to format (migrate)": {edit: func(j *Job) { j.FormatData = []identity.Disk{{Serial: "D1", Size: 1}} }, want: "formats no disk"},
		"more disks than volumes":    {edit: func(j *Job) { j.Mode = "install"; j.FormatData = []identity.Disk{{Serial: "D1", Size: 1}} }, want: "1 disks to format for 0"},
		"a table type":               {edit: func(j *Job) { j.Table = "dos" }, want: "table is"},
		"another table hash":         {edit: func(j *Job) { j.TableSHA256 = strings.Repeat("0", 64) }, want: "table_sha256"},
		"a state UUID":               {edit: func(j *Job) { j.StateUUID = "00000000-0000-4000-8000-000000000000" }, want: "state_uuid"},
		"a volume to reattach":       {edit: func(j *Job) { j.Reattach = []roles.Volume{{UUID: "x"}} }, want: ""},
		"an unknown mode":            {edit: func(j *Job) { j.Mode = "rollback" }, want: "mode"},
		"a target of another size":   {edit: func(j *Job) { j.Target.Size *= 2 }, want: "writes"},
		"numbers":                    {edit: func(j *Job) { j.Numbers[0], j.Numbers[1] = j.Numbers[1], j.Numbers[0] }, want: "numbers"},
		"a boot UUID map":            {edit: func(j *Job) { j.BootUUIDs = map[string]string{"a": "b"} }, want: "boot_uuids"},
		"an ESP artifact elsewhere":  {edit: func(j *Job) { j.Extents[0].Bytes = 4 << 20 }, want: "extents"},
		"a health path":              {edit: func(j *Job) { j.Health = "../../x" }, want: "health"},
	} {
		t.Run(name, func(t *testing.T) {
			_, sys, j := checkFixture(t)
			if c.edit != nil {
				c.edit(j)
			}
			if c.disk.Path == "" {
				c.disk = sys
			}
			if c.seed == "" {
				c.seed = "run-1\x00box"
			}
			if c.sum == "" {
				c.sum = "sum"
			}
			err := j.Check(m, c.sum, c.seed, c.disk, OldTable)
			if c.want == "" { // volumes only name fstab entries: carried as journaled
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRunMismatch) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %v naming %q", err, ErrRunMismatch, c.want)
			}
		})
	}
}

// TestCheckInstallDataDisks: an install formats only the disks its plan
// named, each with the label and UUID the release and the run give it.
func TestCheckInstallDataDisks(t *testing.T) {
	m, sys, _ := checkFixture(t)
	blank := sys
	blank.Table, blank.Partitions = nil, nil
	ext, err := m.Layout.PlaceKeeping(blank.Size, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, err := NewJob("install", "releases/p-1", "sum", m, blank, release.Placement{Table: "gpt", Extents: ext}, nil, "seed")
	if err != nil {
		t.Fatal(err)
	}
	j.AddDataDisk(m, inventory.Disk{Path: "/dev/vdb", Serial: "D1", Size: 1 << 30}, "seed")
	if v := j.Reattach[0]; v.Label != "nvr-1" || v.FSType != "ext4" {
		t.Fatalf("data volume %+v", v)
	}
	if err := j.Check(m, "sum", "seed", blank, OldTable); err != nil {
		t.Fatalf("the install as planned: %v", err)
	}
	for name, edit := range map[string]func(*Job){
		"another disk to format": func(j *Job) { j.FormatData[0].Serial = "VICTIM" },
		"another label":          func(j *Job) { j.Reattach[0].Label = "other" },
		"another UUID":           func(j *Job) { j.Reattach[0].UUID = "0" },
		"the target itself":      func(j *Job) { j.FormatData[0] = j.Target },
		"a disk with no serial":  func(j *Job) { j.FormatData[0].Serial = "" },
	} {
		t.Run(name, func(t *testing.T) {
			j2 := *j
			j2.FormatData = append([]identity.Disk(nil), j.FormatData...)
			j2.Reattach = append([]roles.Volume(nil), j.Reattach...)
			edit(&j2)
			if err := j2.Check(m, "sum", "seed", blank, OldTable); !errors.Is(err, ErrRunMismatch) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestCheckAfterTable: once the table is written, the disk must carry the
// job's table to the byte.
func TestCheckAfterTable(t *testing.T) {
	m, sys, j := checkFixture(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(sys.Size)
	if st, err := j.OnDisk(f); err != nil || st != OldTable {
		t.Fatalf("a blank image: %v %v", st, err)
	}
	if err := j.WriteTable(f); err != nil {
		t.Fatal(err)
	}
	st, err := j.OnDisk(f)
	if err != nil || st != NewTable {
		t.Fatalf("after the table step: %v %v", st, err)
	}
	if err := j.Check(m, "sum", "run-1\x00box", sys, st); err != nil {
		t.Fatalf("the written job: %v", err)
	}
	j.Extents[0].Artifact = "rootfs"
	if err := j.Check(m, "sum", "run-1\x00box", sys, st); !errors.Is(err, ErrRunMismatch) {
		t.Fatalf("an artifact swapped after the table: %v", err)
	}
	j.Extents[0].Artifact = "esp"
	j.Extents[2].Role, j.Extents[2].Artifact = release.RoleArtifact, "esp" // the same table, the data partition to write
	if err := j.Check(m, "sum", "run-1\x00box", sys, st); !errors.Is(err, ErrRunMismatch) {
		t.Fatalf("a kept partition turned into one to write: %v", err)
	}
	if err := j.CheckRoles(m); err == nil {
		t.Fatal("CheckRoles let a kept partition be written")
	}
}
