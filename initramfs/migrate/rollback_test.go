package migrate

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/rollback"
	"github.com/passeur/passeur/initramfs/stream"
)

// legacyDisk lays, with sfdisk, an installer's MBR disk (root, swap, data
// to the last sector) and fills every partition with pseudo-random bytes.
func legacyDisk(t *testing.T, size int64) (string, inventory.Disk) {
	t.Helper()
	tool(t, "sfdisk")
	img := filepath.Join(t.TempDir(), "system.img")
	data := make([]byte, size)
	rand.New(rand.NewSource(7)).Read(data)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = bytes.NewReader([]byte("label: dos\nlabel-id: 0x7c0ffee7\nstart=2048, size=65536, type=83, bootable\nstart=67584, size=16384, type=82\nstart=83968, type=83\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, _ := os.Open(img)
	defer f.Close()
	tab, err := ptable.Read(f, 512)
	if err != nil || tab == nil {
		t.Fatalf("ptable.Read: %v", err)
	}
	d := inventory.Disk{Path: "/dev/vda", Serial: "SYS", Size: size, SectorSize: 512, Table: &inventory.Table{Type: tab.Type, ID: tab.ID}}
	for _, e := range tab.Partitions {
		d.Partitions = append(d.Partitions, inventory.Partition{Path: "/dev/vda" + string(rune('0'+e.Number)), Number: e.Number,
			Start: int64(e.Start) * 512, Size: int64(e.Sectors) * 512, PartUUID: e.UUID})
	}
	return img, d
}

func fileSum(t *testing.T, p string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, io.NewSectionReader(f, off, n))
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// TestLateFailureRollsBack runs a migration's disk steps on a legacy disk
// image, its data partition running to the last sector (the MBR
// fallback), and fails it after each late step in turn: the image writes,
// the boot entry, the state filesystem, fstab and restore (written inside
// the partitions through loop devices bounded by them, here as writes
// anywhere in them), the table. Each time the save taken before the
// first write puts the disk back byte for byte, the data partition never
// having changed: the next boot ends in the old system.
func TestLateFailureRollsBack(t *testing.T) {
	const size = 48 << 20
	lay := release.Layout{Table: "gpt", Fallback: "dos", Partitions: []release.Partition{
		{Name: "esp", Type: "esp", Size: release.Size{Bytes: 8 << 20}, Role: release.RoleArtifact, Artifact: "esp", UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a001"},
		{Name: "root", Type: "root-x86-64", Size: release.Size{Bytes: 8 << 20}, Role: release.RoleArtifact, Artifact: "root", UUID: "0b6f4a56-2222-4e0e-8a55-0d7e3bd3a002"},
		{Name: "state", Type: "linux-generic", Size: release.Size{Bytes: 16 << 20}, Role: release.RoleEmpty, Filesystem: "ext4", UUID: "0b6f4a56-3333-4e0e-8a55-0d7e3bd3a003"},
		{Name: "data", Type: "linux-generic", Size: release.Size{Rest: true}, Role: release.RoleKeep, KeepLabel: "nvr-*"},
	}}
	m := &release.Manifest{Product: "p", State: "state", Layout: lay}
	steps := []string{"write esp", "write root", "boot entry", "state", "fstab", "restore", "table"}
	for cut := range steps {
		t.Run("after "+steps[cut], func(t *testing.T) {
			img, sys := legacyDisk(t, size)
			dataPart := sys.Partitions[2]
			before := fileSum(t, img, 0, size)
			dataBefore := fileSum(t, img, dataPart.Start, dataPart.Size)
			first, end := ptable.Usable("dos", ptable.Geometry{Size: size, SectorSize: 512})
			ext, err := lay.PlaceIn(size, release.Region{Table: "dos", Start: first, End: end}, map[string]release.Extent{"data": {Start: dataPart.Start, Bytes: dataPart.Size}})
			if err != nil {
				t.Fatal(err)
			}
			job, err := NewJob("migrate", "releases/p-1", "x", m, sys, release.Placement{Table: "dos", Extents: ext}, nil, "run")
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			regions, err := job.Overwrites()
			if err != nil {
				t.Fatal(err)
			}
			save := filepath.Join(t.TempDir(), "rollback")
			if _, err := rollback.Save(f, size, regions, save, nil); err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewSource(int64(cut)))
			scribble := func(name string) { // a write through a loop device bounded by the partition
				e, _ := job.Extent(name)
				buf := make([]byte, 64<<10)
				rnd.Read(buf)
				f.WriteAt(buf, e.Start+rnd.Int63n(e.Bytes-int64(len(buf))))
				f.WriteAt(buf[:512], e.Start+e.Bytes-512)
			}
			do := map[string]func() error{
				"write esp":  func() error { return writeArtifact(f, job, "esp", rnd) },
				"write root": func() error { return writeArtifact(f, job, "root", rnd) },
				"boot entry": func() error { scribble("esp"); return nil },
				"state": func() error {
					st, _ := job.Extent("state")
					return MakeFilesystem(f, st, job.StateUUID)
				},
				"fstab":   func() error { scribble("state"); return nil },
				"restore": func() error { scribble("state"); return nil },
				"table":   func() error { return job.WriteTable(f) },
			}
			for _, s := range steps[:cut+1] {
				if err := do[s](); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			if fileSum(t, img, 0, size) == before {
				t.Fatal("the steps wrote nothing")
			}
			if fileSum(t, img, dataPart.Start, dataPart.Size) != dataBefore {
				t.Fatal("the steps wrote in the data partition")
			}
			if cut == len(steps)-1 { // the table written: the new system is complete, and readable
				tab, err := ptable.Read(f, 512)
				if err != nil || tab == nil || tab.Type != "dos" || len(tab.Partitions) != 4 {
					t.Fatalf("new table %+v, %v", tab, err)
				}
			}
			saved, err := rollback.Load(save, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := saved.Tiles(regions); err != nil {
				t.Fatal(err)
			}
			if err := rollback.Restore(f, f.Sync, saved, save, nil, nil); err != nil {
				t.Fatal(err)
			}
			if fileSum(t, img, 0, size) != before {
				t.Error("the disk after the rollback is not the old one")
			}
			tab, err := ptable.Read(f, 512)
			if err != nil || tab == nil || tab.Type != "dos" || len(tab.Partitions) != 3 || tab.Partitions[0].Start != 2048 {
				t.Errorf("old table after the rollback: %+v, %v", tab, err)
			}
		})
	}
}

// writeArtifact streams pseudo-random bytes as the artifact of partition
// name, as the image step does.
func writeArtifact(f *os.File, job *Job, name string, rnd *rand.Rand) error {
	e, _ := job.Extent(name)
	img := make([]byte, e.Bytes/2)
	rnd.Read(img)
	_, err := stream.Write(f, e.Start, e.Bytes, bytes.NewReader(img), stream.Options{})
	return err
}
