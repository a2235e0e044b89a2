package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/rollback"
)

// sfdiskImage lays script on a sparse image of size bytes.
func sfdiskImage(t *testing.T, size int64, script string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, size)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return img
}

// TestRollbackOnlyOntoItsDisk: a save is put back only on a disk whose
// table is the one the migration wrote or the one it replaced, never on
// the install media or another disk of the same size and serial.
func TestRollbackOnlyOntoItsDisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed")
	}
	const size = 64 << 20
	img := sfdiskImage(t, size, "label: dos\nlabel-id: 0x7c0ffee7\nstart=2048, size=40960, type=83\nstart=43008, type=83\n")
	f, _ := os.Open(img)
	tab, _ := ptable.Read(f, 512)
	f.Close()
	sys := inventory.Disk{Path: img, Serial: "SYS", Size: size, SectorSize: 512, Table: &inventory.Table{Type: "dos", ID: tab.ID}}
	for _, e := range tab.Partitions {
		sys.Partitions = append(sys.Partitions, inventory.Partition{Path: img + "p", Number: e.Number, Start: int64(e.Start) * 512, Size: int64(e.Sectors) * 512, PartUUID: e.UUID})
	}
	lay := release.Layout{Table: "gpt", Fallback: "dos", Partitions: []release.Partition{
		{Name: "esp", Type: "esp", Size: release.Size{Bytes: 8 << 20}, Role: release.RoleArtifact, Artifact: "esp"},
		{Name: "data", Type: "linux-generic", Size: release.Size{Rest: true}, Role: release.RoleKeep, KeepLabel: "d"},
	}}
	first, end := ptable.Usable("gpt", ptable.Geometry{Size: size, SectorSize: 512})
	ext, err := lay.PlaceIn(size, release.Region{Table: "gpt", Start: first, End: end}, map[string]release.Extent{"data": {Start: 43008 * 512, Bytes: size - 43008*512 - 1<<20}})
	if err != nil {
		t.Fatal(err)
	}
	job, err := migrate.NewJob("migrate", "r", "x", &release.Manifest{Product: "p", Layout: lay}, sys, release.Placement{Table: "gpt", Extents: ext}, nil, "run")
	if err != nil {
		t.Fatal(err)
	}
	regions, _ := job.Overwrites()
	save := filepath.Join(t.TempDir(), "rollback")
	f, _ = os.Open(img)
	m, err := rollback.Save(f, size, regions, save, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	src := &rollbackSource{job: job, target: &sys}
	r := &run{mediaDev: "/dev/sdz1"}
	if err := checkTarget(r, src, m, save); err != nil {
		t.Errorf("the disk as the migration found it: %v", err)
	}
	w, _ := os.OpenFile(img, os.O_RDWR, 0)
	if err := job.WriteTable(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := checkTarget(r, src, m, save); err != nil {
		t.Errorf("the disk as the migration left it: %v", err)
	}
	other := sfdiskImage(t, size, "label: dos\nlabel-id: 0x7c0ffee7\nstart=2048, type=83\n")
	src.target = &inventory.Disk{Path: other, Serial: "SYS", Size: size}
	if err := checkTarget(r, src, m, save); !errors.Is(err, ErrNotThisDisk) {
		t.Errorf("another disk of the same serial and size: %v, want ErrNotThisDisk", err)
	}
	src.target = &sys
	if err := checkTarget(&run{mediaDev: img}, src, m, save); !errors.Is(err, ErrNotThisDisk) {
		t.Errorf("the install media: %v, want ErrNotThisDisk", err)
	}
}
