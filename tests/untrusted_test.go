package tests

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/agent"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	jobs "github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// identityOf is the identity the rescue gives a fixture's system disk:
// its serial and its table as the host reads it.
func identityOf(t *testing.T, d fixture.Disk) string {
	t.Helper()
	f, err := os.Open(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := ptable.Read(f, 512)
	if err != nil || tab == nil {
		t.Fatalf("%s: %v", d.Path, err)
	}
	return fmt.Sprintf("serial %s, %s %s", d.Serial, tab.Type, tab.ID)
}

// craftedJournal is a journal as anyone with the key can write one: the
// header names this box exactly, and the plan formats the box's data disk.
func craftedJournal(t *testing.T, r camrecRelease, a *camrec.Appliance) string {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join(r.dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }
	job := jobs.Job{Mode: "migrate", Release: "releases/camrec-8.0.0", ManifestSHA256: fmt.Sprintf("%x", sha256.Sum256(manifest)),
		Target: identity.Disk{Serial: a.System.Serial, Size: size(a.System.Path)},
		Table:  "gpt", SectorSize: 512, DiskGUID: "0ddba11e-0000-4000-8000-000000000001", Numbers: []int{1},
		FormatData: []identity.Disk{{Serial: a.Data[0].Serial, Size: size(a.Data[0].Path)}},
	}
	job.Extents = []release.Extent{{Partition: r.m.Layout.Partitions[0], Start: 1 << 20, Bytes: 64 << 20}}
	var lines []string
	for _, rec := range []journal.Record{
		{State: journal.StateRun, Detail: mustJSON(t, journal.Header{Mode: "migrate", Machine: identityOf(t, a.System), Host: "camrec-a"})},
		{Step: steps.Plan, State: journal.StateDone, Detail: mustJSON(t, job)},
		{Step: steps.Write + "root", State: journal.StateBegun},
	} {
		lines = append(lines, string(mustJSON(t, rec)))
	}
	return strings.Join(lines, "\n") + "\n"
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCraftedJournal: a journal written by hand on the key, naming this
// box and a plan that formats its data disk, is refused by name before
// anything is written; every disk of the box is unchanged.
func TestCraftedJournal(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 41})
	key := makeKey(t, r, 512<<20, 32, map[string]string{"Backup/camrec-a/2026-11-30T100000Z/" + journal.File: craftedJournal(t, r, a)})
	before := hashes(t, a.Disks())
	m := migrate(t, append(a.Disks(), key), "")
	if len(m.errors) != 1 || !strings.Contains(m.errors[0], jobs.ErrRunMismatch.Error()) || !strings.Contains(m.errors[0], "formats no disk") {
		t.Errorf("errors %v, want %q naming the disk to format", m.errors, jobs.ErrRunMismatch)
	}
	if m.event("take_up") != nil || m.event("plan") != nil {
		t.Error("the crafted run was announced, or a plan of its own made")
	}
	sameHashes(t, "crafted journal", before, hashes(t, a.Disks()))
}

// TestKeyOnALookAlike: a key carried from a box cut mid-migration to a
// second box of the same model, whose disks have the same serials and
// sizes: the second box makes its own plan and backup and never takes up
// the first box's run, which is left on the key as it was.
func TestKeyOnALookAlike(t *testing.T) {
	r := camrec8(t)
	first := v7(t, camrec.VariantA, camrec.Options{Seed: 42})
	second := v7(t, camrec.VariantA, camrec.Options{Seed: 43})
	if first.System.Serial != second.System.Serial || identityOf(t, first.System) == identityOf(t, second.System) {
		t.Fatalf("the fixtures must share serials and differ in tables: %s, %s", identityOf(t, first.System), identityOf(t, second.System))
	}
	key := passeurKey(t, r)
	cutMigration(t, append(first.Disks(), key), migrationCut{step: steps.Write + "root", state: journal.StateBegun}, "")
	runs := runDirs(t, keyTree(t, key.Path), "camrec-a")
	if len(runs) != 1 {
		t.Fatalf("after the cut: %v", runs)
	}
	firstJournal := fileSHA(t, filepath.Join(runs[0], journal.File))

	before := hashes(t, second.Disks())
	cutMigration(t, append(second.Disks(), key), migrationCut{step: steps.Complete, state: journal.StateDone}, "")
	sameHashes(t, "the second box's backup", before, hashes(t, second.Disks()))
	tree := keyTree(t, key.Path)
	runs = runDirs(t, tree, "camrec-a")
	if len(runs) != 2 {
		t.Fatalf("run folders %v, want the first box's and the second's", runs)
	}
	for _, dir := range runs {
		recs, err := journal.Read(filepath.Join(dir, journal.File))
		if err != nil {
			t.Fatal(err)
		}
		var h journal.Header
		json.Unmarshal(recs[0].Detail, &h)
		switch {
		case strings.HasPrefix(h.Machine, identityOf(t, first.System)):
			if got := fileSHA(t, filepath.Join(dir, journal.File)); got != firstJournal {
				t.Error("the first box's journal changed")
			}
		case strings.HasPrefix(h.Machine, identityOf(t, second.System)):
			if _, ok := journal.DoneIn(recs, steps.Complete); !ok {
				t.Errorf("the second box's own backup is not complete: %v", recs)
			}
		default:
			t.Errorf("a run of neither box: %s", h.Machine)
		}
	}
}

// absurdGPT writes a disk whose GPT header has a valid CRC and fields no
// disk can hold: 4096 entries of 0xFFFFFF80 bytes.
func absurdGPT(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "absurd.img")
	if err := fixture.Blank(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	mbr := make([]byte, 512)
	mbr[446+4] = 0xee
	binary.LittleEndian.PutUint32(mbr[446+8:], 1)
	binary.LittleEndian.PutUint32(mbr[446+12:], 64<<20/512-1)
	mbr[510], mbr[511] = 0x55, 0xaa
	h := make([]byte, 512)
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], 64<<20/512-1)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], 64<<20/512-34)
	copy(h[56:72], "passeur-absurd!!")
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 4096)
	binary.LittleEndian.PutUint32(h[84:], 0xFFFFFF80)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteAt(mbr, 0)
	f.WriteAt(h, 512)
	return p
}

// TestHostileDiskAndBug: a disk whose GPT has absurd fields is listed as
// unknown at inventory, and a bug of passeur's own (passeur.debug=panic)
// is reported as an error with the choices left, PID 1 still up: no
// kernel panic in either case.
func TestHostileDiskAndBug(t *testing.T) {
	disk := qemu.Disk{Path: absurdGPT(t), Bus: qemu.VirtioBlk, Serial: "ABSURD"}
	run := rescue(t, []qemu.Disk{disk}, "passeur.mode=plan passeur.debug=panic")
	if run.event("ready") == nil {
		t.Fatal("no ready event")
	}
	var inv struct{ Disks []inventory.Disk }
	run.decode(t, "inventory", &inv)
	if len(inv.Disks) != 1 || inv.Disks[0].Content != inventory.Unknown {
		t.Errorf("inventory %+v, want the disk unknown", inv.Disks)
	}
	if len(run.errors) != 1 || !strings.Contains(run.errors[0], agent.ErrBug.Error()) || !strings.Contains(run.errors[0], "debug=panic") {
		t.Errorf("errors %v, want the bug reported", run.errors)
	}
	if run.event("choices") == nil {
		t.Error("no choices offered after the bug")
	}
}

// symlinkBackup writes, with passeur's own backup writer, a complete
// backup of box a that holds a folder of the product's configuration, a
// link in it to the key's mount point and a file below that link: what
// anyone with the key can put there, sums recomputed.
func symlinkBackup(t *testing.T, a *camrec.Appliance) map[string]string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "2026-11-30T100000Z")
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	items := []backup.Item{
		{Entry: backup.Entry{Path: "/etc/camrec", Origin: backup.OriginSystem, Type: "dir", Mode: 0o755, MTime: now}},
		{Entry: backup.Entry{Path: "/etc/camrec/x", Origin: backup.OriginSystem, Type: "symlink", Target: "/run/passeur/media", Mode: 0o777, MTime: now}},
		{Entry: backup.Entry{Path: "/etc/camrec/x/pwned", Origin: backup.OriginSystem, Type: "file", Mode: 0o644, MTime: now, Size: 5}, Data: []byte("owned")},
	}
	id := backup.MachineID{RootUUID: a.RootUUID, Serial: a.System.Serial}
	if _, err := backup.Write(dir, backup.Manifest{Host: "camrec-a", MachineID: &id, Created: now, Product: "camrec", Version: a.Version}, items, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := backup.MarkComplete(dir); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(filepath.Dir(dir), p)
			files[path.Join(medialayout.BackupDir, "camrec-a", filepath.ToSlash(rel))] = string(data)
		}
		return err
	})
	return files
}

// TestSymlinkBackup: a backup whose file lies below one of its own links
// is refused whole, by name, before anything is mounted read-write: the
// box's disks and the key are unchanged.
func TestSymlinkBackup(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 44})
	key := makeKey(t, r, 512<<20, 32, symlinkBackup(t, a))
	before := hashes(t, append(a.Disks(), key))
	run := rescue(t, append(a.Disks(), key), "passeur.mode=restore")
	if len(run.errors) != 1 || !strings.Contains(run.errors[0], backup.ErrUnsafeEntry.Error()) || !strings.Contains(run.errors[0], "/etc/camrec/x") {
		t.Errorf("errors %v, want %q naming the link", run.errors, backup.ErrUnsafeEntry)
	}
	sameHashes(t, "symlink backup", before, hashes(t, append(a.Disks(), key)))
}
