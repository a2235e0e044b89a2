package plan

import (
	"os"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/roles"
)

func TestMake(t *testing.T) {
	b, err := os.ReadFile("../../image/release/testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	sys := inventory.Disk{Path: "/dev/vda", Serial: "SYS", Size: 512 << 20, Partitions: []inventory.Partition{
		{Path: "/dev/vda1", Start: 1 << 20, Size: 476 << 20},
		{Path: "/dev/vda2", Start: 477 << 20, Size: 34 << 20, FS: &fsprobe.FS{Type: "ext4", Label: "camrec-data"}}}}
	r := &roles.Result{Disks: []roles.Assignment{
		{Disk: sys, Role: roles.System, Root: "/dev/vda1", Version: "7.14.0.3",
			Volumes: []roles.Volume{{Device: "/dev/vda2", Label: "camrec-data", Mountpoint: "/srv/recordings/local"}}},
		{Disk: inventory.Disk{Path: "/dev/sda", Serial: "KEY"}, Role: roles.InstallMedia},
		{Disk: inventory.Disk{Path: "/dev/sdb", Serial: "OTHER"}, Role: roles.Unknown},
	}}
	ext, err := m.Layout.PlaceKeeping(sys.Size, map[string]release.Extent{"data": {Start: 477 << 20, Bytes: 34 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	p := Make(m, r, release.Placement{Table: "gpt", Extents: ext})
	var actions []string
	for _, pp := range p.Partitions {
		actions = append(actions, pp.Action+" "+pp.Name+" "+pp.From)
	}
	if got := strings.Join(actions, "; "); got != "write esp artifact esp; write root artifact root; create state new ext4; keep data /dev/vda2" {
		t.Errorf("partitions: %s", got)
	}
	if len(p.Untouched) != 2 || len(p.Reattach) != 1 || p.Backup.From != "/dev/vda1" || len(p.Steps) == 0 {
		t.Errorf("plan = %+v", p)
	}
	var b2 strings.Builder
	p.Write(&b2)
	for _, want := range []string{"PLAN: migrate camrec 8.0.0 onto /dev/vda", "keep   data", "never written: /dev/sdb unknown"} {
		if !strings.Contains(b2.String(), want) {
			t.Errorf("printed plan lacks %q:\n%s", want, b2.String())
		}
	}
}
