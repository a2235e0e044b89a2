package agent

// The step machine on the host: a mode's steps run against disks that are
// files and media that is a folder, cut by a simulated power loss at every
// journal record, inside every image write and inside every backup file,
// then taken up by a fresh agent as the next boot would. Every take-up must
// end where the uncut run ends.
//
// What the host stands in for: a filesystem passeur mounts is a folder
// (newsys.Folders); the data volumes are read from the disk image's
// partitions; the new system's start is recorded, and its first boot
// leaves its health report; the page cache is not dropped. Everything else
// (journal, release verification, planning checks, image writes, tables,
// ext4 made in Go, backup, seal, rollback save) is the rescue's own code on
// real bytes.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/rollback"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/u-root/u-root/pkg/boot"
)

const (
	smDiskSize = 48 << 20
	smSerial   = "HOST-0001"
	smDataSN   = "HOST-DATA-2"
	smHost     = "box-1"
	smStamp    = "2026-12-01T050000Z"
)

// smWorld is one machine and its key, all of it files, under dir: the
// rescue image's root (trusted key), the media folder (release, backups,
// journals), the system disk image (and, for an install, a blank data
// disk), the installed system's root, the folders that stand for the new
// system's filesystems.
type smWorld struct {
	dir, root, media, disk, dataDisk, oldRoot, folders string
}

// smFixture is a world before its run's first step, and what the test
// knows of it.
type smFixture struct {
	mode     string
	w        smWorld
	pristine string // a copy of the world as made
	m        *release.Manifest
	runDir   string
	machine  string
	job      *migrate.Job // nil for a backup
	kept     [2]int64     // a kept data partition: its bytes are never written
	then     string       // passeur.then=, when not the default
	// report, with token, is the fleet server of a staged run: its
	// backup is uploaded there (step upload).
	report, token string
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

// smContent is a partition image: compressible but not trivial.
func smContent(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		if r.IntN(3) == 0 {
			continue // zero blocks, as an image has
		}
		for j := i; j < min(i+4096, size); j++ {
			b[j] = byte(r.Uint32() & 0x0f)
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

// newFixture makes the world of a run of mode:
//   - migrate: a 48 MiB disk laid out with the host's sfdisk and mkfs.ext4
//     as a vendor would (an old boot and root partition full of the old
//     system's bytes, an ext4 data partition labelled p-data), the
//     installed root's files, a release of product p signed with a fresh
//     minisign key (esp and root images, a state partition passeur makes,
//     the data partition kept), and the run's journal with its plan;
//   - backup: the same machine, the journal with its header only;
//   - install: a blank 48 MiB disk and a blank data disk to format, the
//     same release, the journal with its plan.
func newFixture(t *testing.T, mode string) smFixture {
	t.Helper()
	dir := t.TempDir()
	w := smWorld{dir: filepath.Join(dir, "world")}
	w.root, w.media, w.disk = filepath.Join(w.dir, "image"), filepath.Join(w.dir, "media"), filepath.Join(w.dir, "disk.img")
	w.oldRoot, w.folders = filepath.Join(w.dir, "oldroot"), filepath.Join(w.dir, "fs")
	for _, d := range []string{w.root, w.media, w.folders, w.oldRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := smFixture{mode: mode, w: w, runDir: filepath.Join(w.media, medialayout.BackupDir, smHost, smStamp)}

	// The disks.
	if mode == "install" {
		w.dataDisk = filepath.Join(w.dir, "data.img")
		f.w = w
		for _, p := range []string{w.disk, w.dataDisk} {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Truncate(p, smDiskSize)
		}
	} else {
		if err := os.WriteFile(w.disk, smContent(7, smDiskSize), 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, []byte("label: gpt\nlabel-id: 5B1A6C3E-0000-4000-8000-0000000000AA\n"+
			"size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot\n"+
			"size=20MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n"+
			"start=30MiB, size=16MiB, type=3B8F8425-20E0-4F3B-907F-1A25A76F98E8, name=data\n"), "sfdisk", "-q", w.disk)
		runTool(t, nil, "mkfs.ext4", "-q", "-F", "-L", "p-data", "-U", "0d0e0f10-1112-4314-8516-171819202122", "-E", fmt.Sprintf("offset=%d", 30<<20), w.disk, "16384k")
		for p, c := range map[string]string{"etc/hostname": smHost + "\n", "etc/p/p.conf": "cameras=4\n", "etc/p/version": "p 1.9.0\n",
			"etc/p/cameras/1.conf": strings.Repeat("rtsp://10.0.0.1/1\n", 300), "var/lib/p/index": string(smContent(3, 300<<10)),
			"etc/fstab": "UUID=0d0e0f10-1112-4314-8516-171819202122 /srv/p ext4 defaults 0 2\n"} {
			os.MkdirAll(filepath.Join(w.oldRoot, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(w.oldRoot, p), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

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
	v, _ := version.Parse("2.0.0")
	m := &release.Manifest{Format: 1, Product: "p", Version: v, Arch: runtime.GOARCH,
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
	f.m = m

	// The job, as the rescue plans it, and the journal as the run's first
	// record leaves it.
	disk, err := inventory.Image(w.disk, "vda", smSerial)
	if err != nil {
		t.Fatal(err)
	}
	f.machine = identity.Name(disk)
	seed := smStamp + "\x00" + f.machine
	g := ptable.Geometry{Size: disk.Size, SectorSize: 512}
	first, end := ptable.Usable("gpt", g)
	switch mode {
	case "migrate":
		var dataPart inventory.Partition
		for _, p := range disk.Partitions {
			if p.PartLabel == "data" {
				dataPart = p
			}
		}
		if dataPart.FS == nil || dataPart.FS.Label != "p-data" {
			t.Fatalf("the data partition as the inventory reads it: %+v", dataPart)
		}
		f.kept = [2]int64{dataPart.Start, dataPart.Size}
		ext, err := m.Layout.PlaceIn(g.Size, release.Region{Table: "gpt", Start: first, End: end}, map[string]release.Extent{"data": {Start: dataPart.Start, Bytes: dataPart.Size}})
		if err != nil {
			t.Fatal(err)
		}
		vols := []roles.Volume{{Device: dataPart.Path, Spec: "UUID=" + dataPart.FS.UUID, Mountpoint: "/srv/p", FSType: "ext4", UUID: dataPart.FS.UUID, Label: "p-data"}}
		f.job, err = migrate.NewJob("migrate", relRel, hex.EncodeToString(sum[:]), m, disk, release.Placement{Table: "gpt", Extents: ext}, vols, seed)
		if err != nil {
			t.Fatal(err)
		}
	case "install":
		ext, err := m.Layout.PlaceIn(g.Size, release.Region{Table: "gpt", Start: first, End: end}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f.job, err = migrate.NewJob("install", relRel, hex.EncodeToString(sum[:]), m, disk, release.Placement{Table: "gpt", Extents: ext}, nil, seed); err != nil {
			t.Fatal(err)
		}
		dd, err := inventory.Image(w.dataDisk, "vdb", smDataSN)
		if err != nil {
			t.Fatal(err)
		}
		f.job.AddDataDisk(m, dd, seed)
	}
	j, err := journal.Create(filepath.Join(f.runDir, journal.File), journal.Header{Mode: mode, Machine: f.machine, Host: smHost, Release: "p 2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if f.job != nil {
		if err := j.Complete(steps.Plan, f.job); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	f.pristine = filepath.Join(dir, "pristine")
	if out, err := exec.Command("cp", "-a", w.dir, f.pristine).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return f
}

// powerCut is the panic that stands for the power going off.
type powerCut struct{}

// smAgent is a fresh rescue boot on the host: its steps write the world's
// files, its mounts are folders, the new system's start is counted and its
// first boot leaves a health report.
func smAgent(t *testing.T, f smFixture, console io.Writer) (*Agent, *int) {
	started := new(int)
	c := config.Default()
	c.Mode, c.Unattended = config.Mode(f.mode), true
	if f.then != "" {
		c.Then = f.then
	}
	if f.report != "" {
		c.Staged = config.Staged{UUID: "0a1b2c3d-0000-4000-8000-000000000001", Dir: "passeur-staging"}
		c.Report, c.Box, c.ReportToken = f.report, smHost, f.token
	}
	a := &Agent{Console: console, Events: event.NewEmitter(console), Log: consoleLog{console: console}, Config: c,
		runLog: &runLog{out: console}, mount: newsys.Folders{Root: f.w.folders}, imageRoot: f.w.root, runRoot: filepath.Join(f.w.dir, "run"), efivars: filepath.Join(f.w.dir, "efivars"),
		dropCache: func() error { return nil },
		restart: func(img *boot.LinuxImage) error {
			if img != nil && f.then == config.ThenPoweroff {
				t.Errorf("passeur.then=poweroff, and the new system's kernel was loaded: %s", img.Label())
			}
			*started++
			return newSystemBoots(f)
		}}
	return a, started
}

// newSystemBoots is the new system's first boot: it leaves its health
// report on its state partition.
func newSystemBoots(f smFixture) error {
	sys := newsys.System{Disk: f.w.disk, Job: f.job, Mount: newsys.Folders{Root: f.w.folders}, Dir: filepath.Join(f.w.dir, "newsys")}
	umount, err := sys.MountState(false)
	if err != nil {
		return err
	}
	p := filepath.Join(sys.Path(newsys.StateDir), f.job.Health)
	os.MkdirAll(filepath.Dir(p), 0o755)
	return errors.Join(os.WriteFile(p, []byte(`{"ok": true, "version": "2.0.0"}`), 0o644), umount())
}

// hostVolumes reads the old system's data volumes: the partitions of the
// disk images are readable (their bytes are there), nothing else is.
type hostVolumes struct{ w smWorld }

func (h hostVolumes) Files(dev, fstype string) (fs.FS, error) {
	if !strings.HasPrefix(dev, h.w.disk+"@") || fstype != "ext4" {
		return nil, fmt.Errorf("%s: not a volume of this machine", dev)
	}
	return os.DirFS(h.w.folders), nil
}
func (hostVolumes) Close() error { return nil }

func smDisks(t *testing.T, f smFixture) []inventory.Disk {
	t.Helper()
	d, err := inventory.Image(f.w.disk, "vda", smSerial)
	if err != nil {
		t.Fatal(err)
	}
	disks := []inventory.Disk{d}
	if f.w.dataDisk != "" {
		dd, err := inventory.Image(f.w.dataDisk, "vdb", smDataSN)
		if err != nil {
			t.Fatal(err)
		}
		disks = append(disks, dd)
	}
	return disks
}

// smRun is the run of a boot that found the fixture's unfinished run on
// the media: what mountMedia and open establish in the rescue.
func smRun(t *testing.T, f smFixture, disks []inventory.Disk) *run {
	t.Helper()
	s := &session{m: f.m, disks: disks, rollback: true, files: hostVolumes{f.w}}
	s.sys = &roles.Assignment{Disk: disks[0], Role: roles.System, Product: "p", Version: "1.9.0", Root: disks[0].Path + "@root"}
	s.roles = &roles.Result{Disks: []roles.Assignment{*s.sys}}
	r := &run{s: s, media: f.w.media, root: f.w.oldRoot, files: os.DirFS(f.w.oldRoot), host: smHost, machine: f.machine,
		id: backup.MachineID{Serial: smSerial}}
	dir, err := journal.FindUnfinished(filepath.Join(f.w.media, medialayout.BackupDir, smHost), f.mode, f.machine)
	if err != nil || dir == "" {
		t.Fatalf("no unfinished %s run of this machine: %q %v", f.mode, dir, err)
	}
	r.dir = dir
	if r.j, err = journal.Open(filepath.Join(dir, journal.File)); err != nil {
		t.Fatal(err)
	}
	return r
}

// steps runs the mode's steps of r, as the mode does once its run is open.
func (f smFixture) steps(t *testing.T, a *Agent, r *run, disks []inventory.Disk) error {
	switch f.mode {
	case "backup":
		_, err := a.backupRun(r)
		return err
	case "install":
		var job *migrate.Job
		raw, _ := r.j.Done(steps.Plan)
		if err := json.Unmarshal(raw, &job); err != nil {
			t.Fatal(err)
		}
		return a.writeJob(r, job, f.m, disks, hostVolumes{f.w})
	}
	var job *migrate.Job
	raw, _ := r.j.Done(steps.Plan)
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	return a.migrateSteps(r, job, disks)
}

// firstBoot runs the fixture's run, the power going off after its cut-th
// journal record (0: never). It reports whether the cut happened and how
// many times the new system was started.
func firstBoot(t *testing.T, f smFixture, cut int, console io.Writer) (bool, int) {
	t.Helper()
	a, started := smAgent(t, f, console)
	disks := smDisks(t, f)
	r := smRun(t, f, disks)
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
		if err := f.steps(t, a, r, disks); err != nil {
			t.Fatalf("first boot: %v\n%s", err, console)
		}
	}()
	r.j.Close()
	return cutHappened, *started
}

// nextBoot is a boot after a cut: a fresh agent takes the run up from the
// media, as PID 1 does before anything else (a migration or install that
// began writing); otherwise the mode, run again, goes on with its
// unfinished run (steps done are skipped). It returns how many times it
// started the new system.
func nextBoot(t *testing.T, f smFixture, console io.Writer) int {
	t.Helper()
	a, started := smAgent(t, f, console)
	disks := smDisks(t, f)
	took, err := a.takeUpOn(&run{media: f.w.media}, disks, hostVolumes{f.w})
	if err != nil {
		t.Fatalf("take-up: %v\n%s", err, console)
	}
	if !took {
		r := smRun(t, f, disks)
		if err := f.steps(t, a, r, disks); err != nil {
			t.Fatalf("the %s gone on with: %v\n%s", f.mode, err, console)
		}
		r.j.Close()
	}
	return *started
}

// smOutcome is what a world ends with, to compare. Made anew at each
// take-up of their step, and compared by what they hold rather than by
// their bytes: the state partition (an ext4 made in Go: its timestamps),
// an install's data disk (the same), the backup's MANIFEST.json and
// SHA256SUMS (its creation time) and the backup secret (random).
type smOutcome struct {
	Disk     string            // SHA-256 of the system disk, the state partition zeroed
	Kept     string            // SHA-256 of the kept data partition
	DataFS   string            // an install's data disk: its filesystem as probed
	State    map[string]string // path -> SHA-256 of the state's files
	Backup   []string          // the backup's entries: path, size, SHA-256, pieces
	Complete bool              // the backup verifies and is marked complete
	Sealed   bool              // its seal holds with the new system's secret
	Save     []string          // the rollback save's pieces
	Finished bool
	Steps    []string // steps done, in order, each once
}

func outcomeOf(t *testing.T, f smFixture) smOutcome {
	t.Helper()
	var o smOutcome
	disk, err := os.ReadFile(f.w.disk)
	if err != nil {
		t.Fatal(err)
	}
	if f.job != nil && f.job.State != "" {
		st, _ := f.job.Extent(f.job.State)
		clear(disk[st.Start : st.Start+st.Bytes])
	}
	o.Disk = hashOf(disk)
	if f.kept[1] > 0 {
		o.Kept = hashOf(readRange(t, f.w.disk, f.kept[0], f.kept[1]))
	}
	if f.w.dataDisk != "" {
		dd, err := os.Open(f.w.dataDisk)
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := fsprobe.Probe(dd, smDiskSize)
		dd.Close()
		if fsys != nil {
			o.DataFS = fmt.Sprintf("%s %s %s", fsys.Type, fsys.UUID, fsys.Label)
		} else {
			o.DataFS = fmt.Sprint(err)
		}
	}
	o.State = map[string]string{}
	var secret []byte
	filepath.WalkDir(f.w.folders, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.w.folders, p)
		b, _ := os.ReadFile(p)
		if strings.HasSuffix(p, "backup.secret") {
			secret = b
			return nil
		}
		o.State[rel] = hashOf(b)
		return nil
	})
	if bm, err := backup.Load(f.runDir, nil); err == nil {
		for _, e := range bm.Entries {
			var pieces []string
			for _, p := range e.Pieces {
				pieces = append(pieces, p.Name+":"+p.SHA256[:12])
			}
			o.Backup = append(o.Backup, fmt.Sprintf("%s %d %.12s %v", e.Path, e.Size, e.SHA256, pieces))
		}
		sort.Strings(o.Backup)
		o.Complete = backup.Verify(f.runDir, nil) == nil && backup.IsComplete(f.runDir)
		o.Sealed = secret != nil && backup.CheckSeal(f.runDir, secret) == nil
	}
	if sm, err := rollback.Load(filepath.Join(f.runDir, saveDir), smDiskSize); err == nil {
		for _, p := range sm.Pieces {
			o.Save = append(o.Save, fmt.Sprintf("%d+%d %s", p.Offset, p.Length, p.StoredSHA256[:12]))
		}
	}
	recs, err := journal.Read(filepath.Join(f.runDir, journal.File))
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

// finishedRun reports whether the fixture's run is over.
func finishedRun(t *testing.T, f smFixture) bool {
	recs, err := journal.Read(filepath.Join(f.runDir, journal.File))
	if err != nil {
		t.Fatal(err)
	}
	return len(recs) > 0 && recs[len(recs)-1].State == journal.StateFinished
}

func (o smOutcome) diff(want smOutcome) string {
	var d []string
	check := func(what string, got, want any) {
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			d = append(d, fmt.Sprintf("%s: %s, want %s", what, g, w))
		}
	}
	check("system disk", o.Disk, want.Disk)
	check("kept data partition", o.Kept, want.Kept)
	check("data disk", o.DataFS, want.DataFS)
	check("state", sortedMap(o.State), sortedMap(want.State))
	check("backup", o.Backup, want.Backup)
	check("backup complete", o.Complete, want.Complete)
	check("sealed", o.Sealed, want.Sealed)
	check("rollback save", o.Save, want.Save)
	check("finished", o.Finished, want.Finished)
	check("steps", o.Steps, want.Steps)
	return strings.Join(d, "\n")
}

func sortedMap(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v[:12])
	}
	sort.Strings(out)
	return out
}

// cutPoint is where the power goes off: after a journal record of the
// first boot, and then, with a file, part of that file already written.
type cutPoint struct {
	record int
	file   string // an image being written ("image:<partition>"), or a backup piece being stored
	bytes  int64
	before []string // backup pieces stored whole (under their temporary names) before it
	name   string
}

// TestStepMachine runs each mode's steps on the host, uncut, then cut at
// every journal record and inside every image write and backup file, each
// cut taken up: every take-up must end as the uncut run ends.
func TestStepMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("the power-cut matrix")
	}
	for _, tc := range []struct {
		mode string
		min  int // cut points at least
		want []string
	}{
		{"migrate", 60, []string{steps.Plan, steps.Release, steps.Save, steps.Backup, steps.Verify, steps.Complete, steps.Reattach,
			steps.Write + "esp", steps.Write + "root", steps.State, steps.Fstab, steps.Restore, steps.Table, steps.Boot}},
		{"backup", 20, []string{steps.Backup, steps.Verify, steps.Complete}},
		{"install", 10, []string{steps.Plan, steps.Format + smDataSN, steps.Reattach, steps.Write + "esp", steps.Write + "root",
			steps.State, steps.Fstab, steps.Table, steps.Boot}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			start := time.Now()
			f := newFixture(t, tc.mode)
			var console bytes.Buffer
			f.reset(t)
			if cut, n := firstBoot(t, f, 0, &console); cut || n != map[bool]int{true: 1}[f.job != nil] {
				t.Fatalf("the uncut run: cut %v, the new system started %d times", cut, n)
			}
			recs, err := journal.Read(filepath.Join(f.runDir, journal.File))
			if err != nil {
				t.Fatal(err)
			}
			cuts := cutPoints(t, f, recs)
			for boot := 0; boot < 2 && !finishedRun(t, f); boot++ {
				nextBoot(t, f, &console)
			}
			want := outcomeOf(t, f)
			if !want.Finished || want.Complete != (f.mode != "install") || strings.Join(want.Steps, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("the uncut run: %+v\n%s", want, console.String())
			}
			if f.mode == "migrate" && !want.Sealed || f.job != nil && len(want.State) < 2 {
				t.Fatalf("the uncut run left the new system's state %v, sealed %v", want.State, want.Sealed)
			}
			if f.mode == "migrate" && (want.Kept != hashOf(readRange(t, filepath.Join(f.pristine, "disk.img"), f.kept[0], f.kept[1])) || len(want.Save) == 0) {
				t.Fatalf("the uncut migration wrote its kept data partition, or saved nothing for rollback: %+v", want)
			}
			if len(cuts) < tc.min {
				t.Fatalf("%d cut points, want at least %d", len(cuts), tc.min)
			}
			counts := map[string]int{}
			for _, c := range cuts {
				counts[strings.SplitN(c.name, "-", 2)[0]]++
				t.Run(c.name, func(t *testing.T) {
					var console bytes.Buffer
					f.reset(t)
					cut, started := firstBoot(t, f, c.record, &console)
					if !cut {
						t.Fatalf("no cut after record %d", c.record)
					}
					partial(t, f, c)
					for boot := 0; boot < 3 && !finishedRun(t, f); boot++ {
						started += nextBoot(t, f, &console)
					}
					if f.job != nil && started != 1 {
						t.Errorf("the new system was started %d times", started)
					}
					if d := outcomeOf(t, f).diff(want); d != "" {
						t.Errorf("after the cut and the take-up:\n%s\n%s", d, console.String())
					}
				})
			}
			t.Logf("%s: %d cut points (%v) in %.1f s", tc.mode, len(cuts), counts, time.Since(start).Seconds())
		})
	}
}

// TestStepMachineStaged: a staged run that reports to a fleet server
// uploads its verified backup before its first write (step upload). Uncut
// it ends as a key's run does, the upload between the backup's seal and
// the first write, the server keeping the backup's files; cut at each of
// the upload's records and at the step after it, each take-up ends the
// same, the server keeping one backup, the media's.
func TestStepMachineStaged(t *testing.T) {
	if testing.Short() {
		t.Skip("power cuts")
	}
	store, err := fleet.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, smHost, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	// server is a fresh fleet server, keeping backups in its own folder.
	server := func(t *testing.T) (string, string) {
		kept := t.TempDir()
		hs := httptest.NewServer(&fleet.Server{Store: store, Backups: kept})
		t.Cleanup(hs.Close)
		return hs.URL + fleet.ReportPath, kept
	}
	// uploaded checks the server keeps the media's backup, file for file.
	uploaded := func(t *testing.T, f smFixture, kept string) {
		t.Helper()
		tars, _ := filepath.Glob(filepath.Join(kept, smHost, "*.tar"))
		if len(tars) != 1 || filepath.Base(tars[0]) != smStamp+".tar" {
			t.Fatalf("the server keeps %v, want the run's backup", tars)
		}
		file, err := os.Open(tars[0])
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		tr, n := tar.NewReader(file), 0
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			got, _ := io.ReadAll(tr)
			want, err := os.ReadFile(filepath.Join(f.runDir, filepath.FromSlash(h.Name)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("the server's %s is not the media's (%v)", h.Name, err)
			}
			n++
		}
		if n < 3 {
			t.Errorf("the server's backup holds %d files", n)
		}
	}

	f := newFixture(t, "migrate")
	var kept string
	f.report, kept = server(t)
	f.token = token
	var console bytes.Buffer
	f.reset(t)
	if cut, n := firstBoot(t, f, 0, &console); cut || n != 1 {
		t.Fatalf("the uncut run: cut %v, the new system started %d times\n%s", cut, n, console.String())
	}
	recs, err := journal.Read(filepath.Join(f.runDir, journal.File))
	if err != nil {
		t.Fatal(err)
	}
	cuts := cutPoints(t, f, recs)
	for boot := 0; boot < 2 && !finishedRun(t, f); boot++ {
		nextBoot(t, f, &console)
	}
	want := outcomeOf(t, f)
	at := slices.Index(want.Steps, steps.Upload)
	if !want.Finished || at < 1 || want.Steps[at-1] != steps.Complete || !strings.HasPrefix(want.Steps[at+1], steps.Reattach) {
		t.Fatalf("the uncut staged run: %+v\n%s", want, console.String())
	}
	uploaded(t, f, kept)
	var picked []cutPoint
	for i, c := range cuts {
		if strings.Contains(c.name, "-upload-") {
			picked = append(picked, c)
			if i+1 < len(cuts) && !strings.Contains(cuts[i+1].name, "-upload-") {
				picked = append(picked, cuts[i+1])
			}
		}
	}
	if len(picked) != 3 {
		t.Fatalf("cut points around the upload: %v", picked)
	}
	for _, c := range picked {
		t.Run(c.name, func(t *testing.T) {
			var console bytes.Buffer
			f.report, kept = server(t)
			f.reset(t)
			if cut, _ := firstBoot(t, f, c.record, &console); !cut {
				t.Fatalf("no cut after record %d", c.record)
			}
			for boot := 0; boot < 3 && !finishedRun(t, f); boot++ {
				nextBoot(t, f, &console)
			}
			if d := outcomeOf(t, f).diff(want); d != "" {
				t.Errorf("after the cut and the take-up:\n%s\n%s", d, console.String())
			}
			uploaded(t, f, kept)
		})
	}

	// The fleet server cannot be reached: the upload is journaled as not
	// done and the run goes on to the same end: the staged release and
	// the verified backup on the media are enough.
	gone := httptest.NewServer(nil)
	f.report = gone.URL + fleet.ReportPath
	gone.Close()
	f.reset(t)
	console.Reset()
	firstBoot(t, f, 0, &console)
	for boot := 0; boot < 2 && !finishedRun(t, f); boot++ {
		nextBoot(t, f, &console)
	}
	if d := outcomeOf(t, f).diff(want); d != "" {
		t.Errorf("the fleet server unreachable:\n%s\n%s", d, console.String())
	}
	recs, _ = journal.Read(filepath.Join(f.runDir, journal.File))
	detail, _ := journal.DoneIn(recs, steps.Upload)
	var up struct {
		Uploaded bool
		Error    string
	}
	if json.Unmarshal(detail, &up); up.Uploaded || up.Error == "" {
		t.Errorf("the upload to a server gone: %s, want it journaled as not done, with why", detail)
	}
}

// TestThenPoweroff: with passeur.then=poweroff (an update applied at
// shutdown) a migration ends powered off rather than booting the new
// system: its boot step records how, no kernel is loaded, and the next
// rescue boot, after the new system's first power-on, ends the run with
// its health report, as after a boot.
func TestThenPoweroff(t *testing.T) {
	f := newFixture(t, "migrate")
	f.then = config.ThenPoweroff
	f.reset(t)
	var console bytes.Buffer
	if cut, n := firstBoot(t, f, 0, &console); cut || n != 1 {
		t.Fatalf("the run: cut %v, the new system started %d times\n%s", cut, n, console.String())
	}
	recs, err := journal.Read(filepath.Join(f.runDir, journal.File))
	if err != nil {
		t.Fatal(err)
	}
	detail, ok := journal.DoneIn(recs, steps.Boot)
	var how struct{ How string }
	if json.Unmarshal(detail, &how); !ok || how.How != "poweroff" || !strings.Contains(console.String(), "powering off (passeur.then=poweroff)") {
		t.Errorf("the boot step: %s (done %v), want how poweroff\n%s", detail, ok, console.String())
	}
	nextBoot(t, f, &console)
	if o := outcomeOf(t, f); !o.Finished {
		t.Errorf("the next rescue boot did not end the run: %+v\n%s", o, console.String())
	}
}

// cutPoints lists the cut points of a run from the uncut run's journal
// recs and the files it wrote: every record it appended, each image write
// at 9 offsets, each backup piece at 3.
func cutPoints(t *testing.T, f smFixture, recs []journal.Record) []cutPoint {
	t.Helper()
	first := 0 // the first boot's records follow the fixture's and its own resumed record
	for i, r := range recs {
		if r.State == journal.StateResumed {
			first = i + 1
			break
		}
	}
	var cuts []cutPoint
	for i := range recs[first:] {
		cuts = append(cuts, cutPoint{record: i + 1, name: fmt.Sprintf("record-%02d-%s-%s", i+1, strings.ReplaceAll(recs[first+i].Step, " ", "_"), recs[first+i].State)})
	}
	begun := func(step string) int {
		for i, r := range recs[first:] {
			if r.Step == step && r.State == journal.StateBegun {
				return i + 1
			}
		}
		t.Fatalf("no %q begun", step)
		return 0
	}
	if f.job != nil {
		for _, e := range f.job.Extents {
			if e.Role != release.RoleArtifact {
				continue
			}
			size := artifactOf(f.m, e.Artifact).Size
			for _, off := range []int64{512, 4096, 64 << 10, 1 << 20, size / 3, size / 2, size - 4096, size - 1, size} {
				cuts = append(cuts, cutPoint{record: begun(steps.Write + e.Name), file: "image:" + e.Name, bytes: off, name: fmt.Sprintf("image-%s-at-%d", e.Name, off)})
			}
		}
	}
	if f.mode != "install" {
		bm, err := backup.Load(f.runDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		for _, e := range bm.Entries {
			for _, p := range e.Pieces {
				for _, off := range []int64{1, p.Size / 2, p.Size - 1} {
					if off > 0 && off < p.Size {
						cuts = append(cuts, cutPoint{record: begun(steps.Backup), file: p.Name, bytes: off, before: append([]string(nil), stored...),
							name: fmt.Sprintf("file-%s-at-%d", strings.ReplaceAll(p.Name, "/", "_"), off)})
					}
				}
				stored = append(stored, p.Name)
			}
		}
		// The stored pieces, as the uncut run wrote them: what a cut
		// inside the backup leaves under temporary names.
		for i := range cuts {
			if cuts[i].file != "" && !strings.HasPrefix(cuts[i].file, "image:") {
				cuts[i].before = append(cuts[i].before, cuts[i].file)
			}
		}
		f.keepPieces(t, stored)
	}
	return cuts
}

// keepPieces copies the uncut run's backup pieces aside, for partial.
func (f smFixture) keepPieces(t *testing.T, names []string) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(f.runDir, filepath.FromSlash(n)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(filepath.Dir(f.pristine), "pieces", filepath.FromSlash(n))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func artifactOf(m *release.Manifest, name string) release.Artifact {
	for _, a := range m.Artifacts {
		if a.Name == name {
			return a
		}
	}
	panic("no artifact " + name)
}

// partial leaves on the disk or the media what a cut inside a write
// leaves: the first bytes of an image at its partition's place (written
// in order, block after block); the backup pieces before it whole and it
// cut short, under their temporary names (renamed only once a batch is
// synced).
func partial(t *testing.T, f smFixture, c cutPoint) {
	t.Helper()
	switch {
	case c.file == "":
	case strings.HasPrefix(c.file, "image:"):
		e, ok := f.job.Extent(strings.TrimPrefix(c.file, "image:"))
		if !ok {
			t.Fatalf("no partition %s", c.file)
		}
		rc, err := artifactOf(f.m, e.Artifact).Open(filepath.Join(f.w.media, f.job.Release))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b := make([]byte, c.bytes)
		if _, err := io.ReadFull(rc, b); err != nil {
			t.Fatal(err)
		}
		d, err := os.OpenFile(f.w.disk, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.WriteAt(b, e.Start); err != nil {
			t.Fatal(err)
		}
	default:
		for _, n := range c.before {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(f.pristine), "pieces", filepath.FromSlash(n)))
			if err != nil {
				t.Fatal(err)
			}
			if n == c.file {
				b = b[:c.bytes]
			}
			p := filepath.Join(f.runDir, filepath.FromSlash(n)) + ".tmp"
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
