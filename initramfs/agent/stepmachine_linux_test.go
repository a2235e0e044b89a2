package agent

// The step machine on the host: a migration's writing steps run against a
// disk that is a file and media that is a folder, cut by a simulated power
// loss at every journal record and at byte offsets inside every image
// write, then taken up by a fresh agent as the next boot would. Every
// take-up must end where the uncut run ends.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/u-root/u-root/pkg/boot"
)

const (
	smDiskSize = 48 << 20
	smSerial   = "HOST-0001"
	smHost     = "box-1"
)

// smWorld is one machine and its key, all of it files: the rescue image's
// root (trusted key), the media folder (release, backup, journal), the
// system disk image, the folders that stand for the new system's
// filesystems.
type smWorld struct {
	dir, root, media, disk, folders string
}

// reset puts the world back as the fixture made it, at the same paths: a
// machine's devices keep their names from one boot to the next.
func (f smFixture) reset(t *testing.T) smWorld {
	t.Helper()
	if err := os.RemoveAll(f.w.dir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", f.pristine, f.w.dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return f.w
}

// smFixture is the world before the first write, and what the test knows
// of it.
type smFixture struct {
	w        smWorld
	pristine string // a copy of the world as made
	m        *release.Manifest
	runDir   string
	job      *migrate.Job
	dataAt   [2]int64 // the kept data partition: its bytes are never written
	dataHash string
}

// smContent is a partition image: compressible but not trivial.
func smContent(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		n := min(4096, size-i)
		if r.IntN(3) == 0 {
			continue // zero blocks, as an image has
		}
		for j := 0; j < n; j += 8 {
			v := r.Uint64() & 0x0f0f0f0f0f0f0f0f
			for k := 0; k < 8 && j+k < n; k++ {
				b[i+j+k] = byte(v >> (8 * k))
			}
		}
	}
	return b
}

func hashOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func readRange(t *testing.T, path string, at, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	return b
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s: %v", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// newFixture lays out, with the host's sfdisk and mkfs.ext4 as a vendor
// would, a 48 MiB disk: an old boot and root partition full of the old
// system's bytes and a data partition (ext4, label p-data) the release
// keeps; signs a release of product p whose layout is esp, root (both
// images), state (ext4 made by passeur) and the kept data; backs up the
// old system's configuration and index to the media; and journals the
// run up to its first writing step, as a migration leaves it.
func newFixture(t *testing.T) smFixture {
	t.Helper()
	dir := t.TempDir()
	w := smWorld{dir: filepath.Join(dir, "world")}
	w.root, w.media, w.disk, w.folders = filepath.Join(w.dir, "image"), filepath.Join(w.dir, "media"), filepath.Join(w.dir, "disk.img"), filepath.Join(w.dir, "fs")
	for _, d := range []string{w.root, w.media, w.folders} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The old disk.
	if err := os.WriteFile(w.disk, smContent(7, smDiskSize), 0o644); err != nil {
		t.Fatal(err)
	}
	const dataStart, dataSize = 30 << 20, 16 << 20
	runTool(t, []byte("label: gpt\nlabel-id: 5B1A6C3E-0000-4000-8000-0000000000AA\nsize=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot\nsize=20MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\nstart=30MiB, size=16MiB, type=3B8F8425-20E0-4F3B-907F-1A25A76F98E8, name=data\n"),
		"sfdisk", "-q", w.disk)
	runTool(t, nil, "mkfs.ext4", "-q", "-F", "-L", "p-data", "-U", "0d0e0f10-1112-4314-8516-171819202122", "-E", fmt.Sprintf("offset=%d", dataStart), w.disk, fmt.Sprintf("%dk", dataSize>>10))

	// The release, signed by a key the image trusts.
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubText, _ := pub.MarshalText()
	trusted := filepath.Join(w.root, medialayout.TrustedDir)
	os.MkdirAll(trusted, 0o755)
	if err := os.WriteFile(filepath.Join(trusted, "test.pub"), append(pubText, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	relRel := filepath.Join(medialayout.ReleasesDir, "p-2.0.0")
	relDir := filepath.Join(w.media, relRel)
	os.MkdirAll(relDir, 0o755)
	m := &release.Manifest{Format: 1, Product: "p", Version: mustVersion(t, "2.0.0"), Arch: runtime.GOARCH,
		Layout: release.Layout{Table: "gpt", Partitions: []release.Partition{
			{Name: "esp", Type: "esp", Size: release.Size{Bytes: 6 << 20}, Role: release.RoleArtifact, Artifact: "esp"},
			{Name: "root", Type: "linux-generic", Size: release.Size{Bytes: 12 << 20}, Role: release.RoleArtifact, Artifact: "root"},
			{Name: "state", Type: "var", Size: release.Size{Bytes: 8 << 20, Min: true}, Role: release.RoleEmpty, Filesystem: "ext4"},
			{Name: "data", Type: "srv", Size: release.Size{Rest: true}, Role: release.RoleKeep, KeepLabel: "p-data*"},
		}},
		MinMediaFree: 1 << 20, State: "state", Health: "p/health.json", Config: []string{"/etc/p"}, Index: []string{"/var/lib/p/index"},
		Recognize:   release.Recognize{Files: []string{"/etc/p/p.conf"}, VersionFile: "/etc/p/version", VersionRegexp: "^p ([0-9.]+)"},
		DataVolumes: release.DataVolumes{FstabMountpoints: []string{"/srv/p*"}, LabelPatterns: []string{"p-data*"}},
	}
	for i, a := range []struct {
		name string
		size int
	}{{"esp", 5 << 20}, {"root", 11<<20 + 12345}} {
		art, err := release.WriteArtifact(relDir, a.name, bytes.NewReader(smContent(uint64(100+i), a.size)))
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts = append(m.Artifacts, art)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(relDir, "manifest.json"), data, 0o644)
	os.WriteFile(filepath.Join(relDir, "manifest.json"+sign.Ext), sign.Sign(priv, data, "passeur release p 2.0.0"), 0o644)
	sum := sha256.Sum256(data)

	// The job, as the rescue plans it.
	disk, err := inventory.Image(w.disk, "vda", smSerial)
	if err != nil {
		t.Fatal(err)
	}
	var dataPart inventory.Partition
	for _, p := range disk.Partitions {
		if p.PartLabel == "data" {
			dataPart = p
		}
	}
	if dataPart.FS == nil || dataPart.FS.Label != "p-data" {
		t.Fatalf("the data partition as the inventory reads it: %+v", dataPart)
	}
	g := ptable.Geometry{Size: disk.Size, SectorSize: 512}
	first, end := ptable.Usable("gpt", g)
	ext, err := m.Layout.PlaceIn(g.Size, release.Region{Table: "gpt", Start: first, End: end}, map[string]release.Extent{"data": {Start: dataPart.Start, Bytes: dataPart.Size}})
	if err != nil {
		t.Fatal(err)
	}
	machine := roles.Identity(disk)
	runDir := filepath.Join(w.media, medialayout.BackupDir, smHost, "2026-12-01T050000Z")
	vols := []roles.Volume{{Device: dataPart.Path, Spec: "UUID=" + dataPart.FS.UUID, Mountpoint: "/srv/p", FSType: "ext4", UUID: dataPart.FS.UUID, Label: "p-data"}}
	job, err := migrate.NewJob("migrate", relRel, hex.EncodeToString(sum[:]), m, disk, release.Placement{Table: "gpt", Extents: ext}, vols, filepath.Base(runDir)+"\x00"+machine)
	if err != nil {
		t.Fatal(err)
	}

	// The old system's configuration and index, backed up and verified.
	old := filepath.Join(dir, "oldroot")
	for p, c := range map[string]string{"etc/p/p.conf": "cameras=4\n", "etc/p/version": "p 1.9.0\n", "var/lib/p/index": "segment 1\nsegment 2\n"} {
		os.MkdirAll(filepath.Join(old, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(old, p), []byte(c), 0o644)
	}
	items, missing, err := backup.Collect(old, []string{"/etc/p", "/var/lib/p/index"}, backup.OriginSystem)
	if err != nil || len(missing) > 0 {
		t.Fatalf("collect: %v %v", err, missing)
	}
	id := backup.MachineID{Serial: smSerial}
	if _, err := backup.Write(runDir, backup.Manifest{Host: smHost, Machine: machine, MachineID: &id, Created: time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC), Product: "p", Version: "1.9.0"},
		items, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := backup.Verify(runDir, nil); err != nil {
		t.Fatal(err)
	}
	if err := backup.MarkComplete(runDir); err != nil {
		t.Fatal(err)
	}
	j, err := journal.Create(filepath.Join(runDir, journal.File), journal.Header{Mode: "migrate", Machine: machine, Host: smHost, Release: "p 2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name   string
		detail any
	}{{steps.Plan, job}, {steps.Release, map[string]int{"artifacts": 2}}, {steps.Save, saveDetail{Why: "host test"}},
		{steps.Backup, nil}, {steps.Verify, nil}, {steps.Complete, nil}} {
		if err := j.Complete(s.name, s.detail); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	pristine := filepath.Join(dir, "pristine")
	if out, err := exec.Command("cp", "-a", w.dir, pristine).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return smFixture{w: w, pristine: pristine, m: m, runDir: runDir, job: job, dataAt: [2]int64{dataPart.Start, dataPart.Size},
		dataHash: hashOf(readRange(t, w.disk, dataPart.Start, dataPart.Size))}
}

func mustVersion(t *testing.T, s string) version.Version {
	t.Helper()
	v, err := version.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// powerCut is the panic that stands for the power going off.
type powerCut struct{}

// smAgent is a fresh rescue boot on the host: its steps write the world's
// files, its mounts are folders, its boot is recorded.
func smAgent(t *testing.T, f smFixture, w smWorld, console io.Writer) (*Agent, *int) {
	booted := new(int)
	c := config.Default()
	c.Mode, c.Unattended = config.ModeMigrate, true
	mount := newsys.Folders{Root: w.folders}
	a := &Agent{Console: console, Events: event.NewEmitter(console), Log: consoleLog{console: console}, Config: c,
		runLog: &runLog{out: console}, mount: mount, imageRoot: w.root,
		restart: func(*boot.LinuxImage) error {
			*booted++
			return newSystemBoots(t, f, w)
		}}
	return a, booted
}

// newSystemBoots is the new system's first boot: it leaves its health
// report on its state partition.
func newSystemBoots(t *testing.T, f smFixture, w smWorld) error {
	sys := newsys.System{Disk: w.disk, Job: f.job, Mount: newsys.Folders{Root: w.folders}, Dir: filepath.Join(w.dir, "newsys")}
	umount, err := sys.MountState(false)
	if err != nil {
		return err
	}
	p := filepath.Join(sys.Path(newsys.StateDir), f.job.Health)
	os.MkdirAll(filepath.Dir(p), 0o755)
	return errors.Join(os.WriteFile(p, []byte(`{"ok": true, "version": "2.0.0"}`), 0o644), umount())
}

// hostReader reads the old system's data volumes: the data partition of
// the disk image is readable (its bytes are there), anything else is not.
type hostReader struct{ disk string }

func (h hostReader) Files(dev, fstype string) (fs.FS, error) {
	if !strings.HasPrefix(dev, h.disk+"@") || fstype != "ext4" {
		return nil, fmt.Errorf("%s: not a volume of this machine", dev)
	}
	return os.DirFS(os.TempDir()), nil
}
func (hostReader) Close() error { return nil }

// firstBoot runs the migration's writing steps from the world as the
// fixture left it, the power going off after the cut-th journal record (0:
// never). It reports whether the cut happened.
func firstBoot(t *testing.T, f smFixture, w smWorld, cut int, console io.Writer) (bool, int) {
	t.Helper()
	a, booted := smAgent(t, f, w, console)
	disks := smDisks(t, w)
	r := &run{media: w.media, dir: filepath.Join(w.media, strings.TrimPrefix(f.runDir, f.w.media)), host: smHost}
	var err error
	if r.j, err = journal.Open(filepath.Join(r.dir, journal.File)); err != nil {
		t.Fatal(err)
	}
	r.machine = r.j.Header().Machine
	n := 0
	r.j.Emit = func(journal.Record) {
		if n++; n == cut {
			panic(powerCut{})
		}
	}
	cutHappened := false
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(powerCut); !ok {
					panic(p)
				}
				cutHappened = true
			}
		}()
		var job *migrate.Job
		raw, _ := r.j.Done(steps.Plan)
		if err := json.Unmarshal(raw, &job); err != nil {
			t.Fatal(err)
		}
		if err := a.writeJob(r, job, f.m, disks, hostReader{w.disk}); err != nil {
			t.Fatalf("first boot: %v", err)
		}
	}()
	r.j.Close()
	return cutHappened, *booted
}

func smDisks(t *testing.T, w smWorld) []inventory.Disk {
	t.Helper()
	d, err := inventory.Image(w.disk, "vda", smSerial)
	if err != nil {
		t.Fatal(err)
	}
	return []inventory.Disk{d}
}

// nextBoot is the boot after the cut: a fresh agent takes the run up from
// the media, as PID 1 does before anything else; when the cut came before
// the first write, the run is an unfinished migration that a new one goes
// on with (its journaled job, steps done skipped).
func nextBoot(t *testing.T, f smFixture, w smWorld, console io.Writer) int {
	t.Helper()
	a, booted := smAgent(t, f, w, console)
	disks := smDisks(t, w)
	took, err := a.takeUpOn(&run{media: w.media}, disks, hostReader{w.disk})
	if err != nil {
		t.Fatalf("take-up: %v", err)
	}
	if !took {
		r := &run{media: w.media, dir: filepath.Join(w.media, strings.TrimPrefix(f.runDir, f.w.media)), host: smHost}
		if r.j, err = journal.Open(filepath.Join(r.dir, journal.File)); err != nil {
			t.Fatal(err)
		}
		r.machine = r.j.Header().Machine
		var job *migrate.Job
		raw, _ := r.j.Done(steps.Plan)
		json.Unmarshal(raw, &job)
		if err := a.writeJob(r, job, f.m, disks, hostReader{w.disk}); err != nil {
			t.Fatalf("migration gone on with: %v", err)
		}
		r.j.Close()
	}
	return *booted
}

// smOutcome is what a world ends with, to compare: every byte of the disk
// but the state partition (an ext4 passeur makes anew at each take-up of
// its step: its timestamps differ), the state's files but the backup
// secret (random, made at the restore step), whether the backup's seal
// holds with that secret, and the journal's steps.
type smOutcome struct {
	Disk     string            // SHA-256 of the disk, the state partition zeroed
	Data     string            // SHA-256 of the kept data partition
	State    map[string]string // path -> SHA-256 of the state's files
	Sealed   bool
	Finished bool
	Steps    []string // steps done, in order, each once
}

func outcomeOf(t *testing.T, f smFixture, w smWorld) smOutcome {
	t.Helper()
	var o smOutcome
	disk, err := os.ReadFile(w.disk)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.job.Extent(f.job.State)
	clear(disk[st.Start : st.Start+st.Bytes])
	o.Disk = hashOf(disk)
	o.Data = hashOf(readRange(t, w.disk, f.dataAt[0], f.dataAt[1]))
	o.State = map[string]string{}
	var secret []byte
	ents, _ := os.ReadDir(w.folders)
	for _, e := range ents {
		base := filepath.Join(w.folders, e.Name())
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			b, _ := os.ReadFile(p)
			if strings.HasSuffix(p, "backup.secret") {
				secret = b
				return nil
			}
			o.State[e.Name()+"/"+rel] = hashOf(b)
			return nil
		})
	}
	dir := filepath.Join(w.media, strings.TrimPrefix(f.runDir, f.w.media))
	o.Sealed = secret != nil && backup.CheckSeal(dir, secret) == nil
	recs, err := journal.Read(filepath.Join(dir, journal.File))
	if err != nil {
		t.Fatal(err)
	}
	o.Finished = len(recs) > 0 && recs[len(recs)-1].State == journal.StateFinished
	seen := map[string]bool{}
	for _, r := range recs {
		if r.State == journal.StateDone && !seen[r.Step] {
			seen[r.Step] = true
			o.Steps = append(o.Steps, r.Step)
		}
	}
	return o
}

func (o smOutcome) diff(want smOutcome) string {
	var d []string
	if o.Disk != want.Disk {
		d = append(d, "disk bytes differ")
	}
	if o.Data != want.Data {
		d = append(d, "the kept data partition changed")
	}
	if fmt.Sprint(sortedMap(o.State)) != fmt.Sprint(sortedMap(want.State)) {
		d = append(d, fmt.Sprintf("state files %v, want %v", sortedMap(o.State), sortedMap(want.State)))
	}
	if o.Sealed != want.Sealed || o.Finished != want.Finished {
		d = append(d, fmt.Sprintf("sealed %v finished %v, want %v %v", o.Sealed, o.Finished, want.Sealed, want.Finished))
	}
	if strings.Join(o.Steps, ",") != strings.Join(want.Steps, ",") {
		d = append(d, fmt.Sprintf("steps %q, want %q", o.Steps, want.Steps))
	}
	return strings.Join(d, "; ")
}

func sortedMap(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v[:12])
	}
	sort.Strings(out)
	return out
}

// TestStepMachinePowerCuts cuts a migration's writing steps at every
// journal record, and inside every image write at several offsets, and
// takes each up: it must end with the disk, the data partition, the new
// system's state and the journal the uncut run ends with.
func TestStepMachinePowerCuts(t *testing.T) {
	f := newFixture(t)
	var console bytes.Buffer
	ref := f.reset(t)
	if cut, n := firstBoot(t, f, ref, 0, &console); cut || n != 1 {
		t.Fatalf("the uncut run: cut %v, the new system started %d times", cut, n)
	}
	recs := countRecords(t, f, ref)
	begun := map[string]int{}
	for _, e := range f.job.Extents {
		if e.Role == release.RoleArtifact {
			begun[e.Name] = beginIndex(t, f, ref, steps.Write+e.Name)
		}
	}
	if n := nextBoot(t, f, ref, &console); n != 0 {
		t.Fatalf("the boot after the new system's started it %d times again", n)
	}
	want := outcomeOf(t, f, ref)
	if !want.Finished || !want.Sealed || want.Data != f.dataHash || len(want.State) == 0 {
		t.Fatalf("the uncut run: %+v\n%s", want, console.String())
	}
	for _, s := range []string{steps.Reattach, steps.Write + "esp", steps.Write + "root", steps.State, steps.Fstab, steps.Restore, steps.Table, steps.Boot} {
		if !strings.Contains(strings.Join(want.Steps, ","), s) {
			t.Errorf("the uncut run did not do %q: %q", s, want.Steps)
		}
	}
	if hashOf(readRange(t, ref.disk, 0, smDiskSize)) == hashOf(readRange(t, filepath.Join(f.pristine, filepath.Base(f.w.disk)), 0, smDiskSize)) {
		t.Fatal("the uncut run wrote nothing")
	}

	type cutPoint struct {
		record int   // the power goes off after this journal record of the first boot
		write  int64 // then, when > 0, this many bytes of the image being written were already on the disk
		name   string
	}
	var cuts []cutPoint
	for i := 1; i <= recs; i++ {
		cuts = append(cuts, cutPoint{record: i, name: fmt.Sprintf("record-%02d", i)})
	}
	// Inside each image write: the step's begun record, then part of
	// the image on the disk, as a cut between two blocks leaves it.
	for _, e := range f.job.Extents {
		if e.Role != release.RoleArtifact {
			continue
		}
		at := begun[e.Name]
		art := artifactOf(f.m, e.Artifact)
		for _, off := range []int64{512, 4096, 64 << 10, 1 << 20, art.Size / 3, art.Size / 2, art.Size - 4096, art.Size - 1, art.Size} {
			cuts = append(cuts, cutPoint{record: at, write: off, name: fmt.Sprintf("write-%s-at-%d", e.Name, off)})
		}
	}
	if len(cuts) < 30 {
		t.Fatalf("%d cut points", len(cuts))
	}
	for _, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			var console bytes.Buffer
			w := f.reset(t)
			cut, started := firstBoot(t, f, w, c.record, &console)
			if !cut {
				t.Fatalf("no cut after record %d", c.record)
			}
			if c.write > 0 {
				partialWrite(t, f, w, c.name, c.write)
			}
			for boot := 0; boot < 3 && !outcomeOf(t, f, w).Finished; boot++ {
				started += nextBoot(t, f, w, &console)
			}
			if started != 1 {
				t.Errorf("the new system was started %d times", started)
			}
			if d := outcomeOf(t, f, w).diff(want); d != "" {
				t.Errorf("after a cut %s and the take-up: %s\n%s", c.name, d, console.String())
			}
		})
	}
	t.Logf("%d cut points: %d journal records, %d inside image writes", len(cuts), recs, len(cuts)-recs)
}

// countRecords is the number of journal records the writing steps add.
func countRecords(t *testing.T, f smFixture, w smWorld) int {
	recs, err := journal.Read(filepath.Join(w.media, strings.TrimPrefix(f.runDir, f.w.media), journal.File))
	if err != nil {
		t.Fatal(err)
	}
	return len(recs) - smBefore
}

// smBefore is the journal records before the first boot's: the header,
// the six steps done before the first write, the first boot's resumed.
const smBefore = 8

// beginIndex is the index, counted as firstBoot counts, of step's begun
// record in the uncut run.
func beginIndex(t *testing.T, f smFixture, w smWorld, step string) int {
	recs, err := journal.Read(filepath.Join(w.media, strings.TrimPrefix(f.runDir, f.w.media), journal.File))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs[smBefore:] {
		if r.Step == step && r.State == journal.StateBegun {
			return i + 1
		}
	}
	t.Fatalf("no %q begun", step)
	return 0
}

func artifactOf(m *release.Manifest, name string) release.Artifact {
	for _, a := range m.Artifacts {
		if a.Name == name {
			return a
		}
	}
	panic("no artifact " + name)
}

// partialWrite puts the first n bytes of the image of the partition a cut
// point names at its place on the disk: what a cut inside its write leaves.
func partialWrite(t *testing.T, f smFixture, w smWorld, name string, n int64) {
	t.Helper()
	part := strings.Split(strings.TrimPrefix(name, "write-"), "-at-")[0]
	e, ok := f.job.Extent(part)
	if !ok {
		t.Fatalf("no partition %s", part)
	}
	rc, err := artifactOf(f.m, e.Artifact).Open(filepath.Join(w.media, f.job.Release))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	d, err := os.OpenFile(w.disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.WriteAt(b, e.Start); err != nil {
		t.Fatal(err)
	}
}
