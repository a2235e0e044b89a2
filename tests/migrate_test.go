package tests

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/progress"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// migration is one boot of the rescue image in unattended migrate mode,
// followed, through kexec, by the new system's first boot.
type migration struct {
	rescueRun
	health  *camrec.Report // nil when the new system never reported
	console string
}

// migrate boots the rescue image over disks in unattended migrate mode and
// waits for the new system's health report, or for the rescue system to
// have nothing more to do (a refusal).
func migrate(t *testing.T, disks []qemu.Disk, cmdline string) migration {
	t.Helper()
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: disks,
		Cmdline: "passeur.unattended=yes passeur.mode=migrate " + cmdline})
	return finished(t, vm)
}

// finished waits for the new system's health report, or for the rescue
// system to have nothing more to do (a refusal), and stops the VM.
func finished(t *testing.T, vm *qemu.VM) migration {
	t.Helper()
	if _, err := vm.WaitAny(6*bootTimeout, "health", "idle"); err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	m := migration{rescueRun: collect(vm), console: vm.Console()}
	if ev := m.event("health"); ev != nil {
		m.health = new(camrec.Report)
		if err := ev.Decode(m.health); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// healthy is the new system's report; it fails the test unless the run
// got there without an error.
func (m migration) healthy(t *testing.T) camrec.Report {
	t.Helper()
	if len(m.errors) > 0 || m.health == nil {
		t.Fatalf("errors %v, no health report", m.errors)
	}
	return *m.health
}

// reportOf waits for camrec's health report on vm and decodes it.
func reportOf(t *testing.T, vm *qemu.VM, timeout time.Duration) camrec.Report {
	t.Helper()
	ev, err := vm.WaitEvent("health", timeout)
	if err != nil {
		t.Fatal(err)
	}
	var got camrec.Report
	if err := ev.Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// bootV8 boots the system disk alone with the data disks under UEFI, as the
// box will from now on, and returns camrec's health report.
func bootV8(t *testing.T, disks []qemu.Disk) camrec.Report {
	t.Helper()
	vm := qemu.Test(t, qemu.Options{Board: qemu.BuiltArtifacts(t, "qemu-x86_64").Board, UEFI: true, Disks: disks})
	got := reportOf(t, vm, 2*bootTimeout)
	for _, e := range vm.Events() {
		if e.Type == "error" {
			t.Errorf("camrec 8 error event: %s", e.Raw)
		}
	}
	vm.Stop()
	return got
}

// TestMigrate migrates fixtures (a) and (b) unattended from the key: the
// new system, booted by kexec and then under UEFI from its own disk,
// reports what camrec 7 held; the data disks and (b)'s kept data partition
// are byte for byte unchanged.
func TestMigrate(t *testing.T) {
	r := camrec8(t)
	for _, tc := range sample(t, 1, []struct {
		v       camrec.Variant
		kept    int    // partition number of the kept data partition before, 0 for none
		cmdline string // more passeur keys
	}{{camrec.VariantA, 0, ""}, {camrec.VariantB, 2, "passeur.verify=readback"}}) {
		t.Run(string(tc.v), func(t *testing.T) {
			a := v7(t, tc.v, camrec.Options{Seed: 21})
			key := passeurKey(t, r)
			if tc.v == camrec.VariantA {
				// A newer release whose artifact was damaged on the key
				// lies beside the good one: refused by name, 8.0.0 used.
				key = keyWithReleases(t, map[string]string{"camrec-8.0.0": r.dir, "camrec-8.0.1": tamperedNewer(t, r).dir})
			}
			data := fixtureData(a)
			before := hashes(t, data)
			var keptSum string
			if tc.kept > 0 {
				img, _ := partition(t, a.System.Path, tc.kept)
				keptSum = fileSHA(t, img)
			}
			m := migrate(t, append(a.Disks(), key), tc.cmdline)
			m.healthy(t)
			writes := 0
			for _, ev := range m.events {
				var rec struct {
					Step, State string
					Detail      struct{ Readback bool }
				}
				if ev.Type == "journal" && ev.Decode(&rec) == nil && strings.HasPrefix(rec.Step, steps.Write) && rec.State == journal.StateDone {
					writes++
					if rec.Detail.Readback != strings.Contains(tc.cmdline, "readback") {
						t.Errorf("%s: read back %v with keys %q", rec.Step, rec.Detail.Readback, tc.cmdline)
					}
				}
			}
			if writes != 2 {
				t.Errorf("%d image writes journaled, want esp and root", writes)
			}
			if !reflect.DeepEqual(*m.health, a.Expected) {
				t.Errorf("health report after kexec\n got %+v\nwant %+v", *m.health, a.Expected)
			}
			sameHashes(t, "migration", before, hashes(t, data))
			if tc.kept > 0 {
				img, _ := partition(t, a.System.Path, 4)
				if fileSHA(t, img) != keptSum {
					t.Error("the kept data partition changed")
				}
			}
			if tc.v == camrec.VariantA {
				refused := false
				for _, ev := range m.events {
					var rel struct{ Dir, Error string }
					if ev.Type == "release" && ev.Decode(&rel) == nil && rel.Dir == "releases/camrec-8.0.1" {
						refused = strings.Contains(rel.Error, "artifact does not match the manifest: artifact root as stored")
					}
				}
				if !refused {
					t.Error("the tampered camrec 8.0.1 on the key was not refused by name")
				}
			}
			if !strings.Contains(m.console, "booting the new system (kexec)") {
				t.Error("the new system was not started by kexec")
			}
			wantOK := true
			if tc.v == camrec.VariantB {
				// The recordings lose a segment before the next boot: the
				// new system reports it missing, and passeur says so.
				loseSegment(t, a, "/srv/recordings/d1/")
				a.Expected.SegmentsMissing, a.Expected.OK, wantOK = 1, false, false
				a.Expected.Bytes -= a.Segments[0].Size
				before = hashes(t, data)
			}
			if got := bootV8(t, a.Disks()); !reflect.DeepEqual(got, a.Expected) {
				t.Errorf("health report under UEFI\n got %+v\nwant %+v", got, a.Expected)
			}
			sameHashes(t, "first boots of camrec 8", before, hashes(t, data))

			// The next rescue boot reads the new system's health report
			// and ends the run with it.
			again := rescue(t, append(a.Disks(), key), "passeur.mode=migrate")
			var out struct {
				OK      bool
				Message string
			}
			again.decode(t, "outcome", &out)
			if out.OK != wantOK || len(again.errors) > 0 {
				t.Errorf("outcome %+v (errors %v), want ok %v", out, again.errors, wantOK)
			}
			runs := runDirs(t, keyTree(t, key.Path), a.Expected.Product+"-"+string(tc.v))
			recs, _ := journal.Read(filepath.Join(runs[0], journal.File))
			if len(runs) != 1 || len(recs) == 0 || recs[len(recs)-1].State != journal.StateFinished {
				t.Errorf("run folders %v: the run is not finished", runs)
			}
			if again.event("boot") != nil {
				t.Error("the rescue boot started the new system again")
			}
			fsckClean(t, key.Path)
		})
	}
}

// tamperedNewer is camrec 8 signed again as 8.0.1 (by the trusted key),
// with one byte of its root artifact flipped afterwards, as a failing key
// would.
func tamperedNewer(t *testing.T, r camrecRelease) camrecRelease {
	return badRelease(t, r, func(dir string, m *release.Manifest) bool {
		m.Version = version.MustParse("8.0.1")
		p := filepath.Join(dir, "root.img.zst")
		data, _ := os.ReadFile(p)
		data[len(data)/3] ^= 0x01
		os.WriteFile(p, data, 0o644)
		return true
	})
}

// keyWithReleases makes a passeur key holding releases/<name>/ for each
// name and release folder.
func keyWithReleases(t *testing.T, rels map[string]string) qemu.Disk {
	t.Helper()
	files := map[string]string{}
	for name, dir := range rels {
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, n := range names {
			files["releases/"+name+"/"+filepath.Base(n)] = n
		}
	}
	img := filepath.Join(t.TempDir(), "key.img")
	if err := fixture.Key(img, 512<<20, 32, files, map[string]string{medialayout.Marker: `{"format":1}`}); err != nil {
		t.Fatal(err)
	}
	return qemu.Disk{Path: img, Bus: qemu.USB, Serial: "PASSEUR-KEY"}
}

// loseSegment deletes the first recording under the mount point prefix
// from its data disk (a GPT whose first partition is the ext4 volume).
func loseSegment(t *testing.T, a *camrec.Appliance, prefix string) {
	t.Helper()
	for i, s := range a.Segments {
		if !strings.HasPrefix(s.Path, prefix) {
			continue
		}
		a.Segments[0], a.Segments[i] = a.Segments[i], a.Segments[0]
		for _, v := range a.Volumes {
			if v.Mountpoint+"/" == prefix {
				img, putBack := partition(t, a.Data[v.Disk].Path, 1)
				if out, err := exec.Command("debugfs", "-w", "-R", "rm "+strings.TrimPrefix(s.Path, prefix), img).CombinedOutput(); err != nil {
					t.Fatalf("debugfs rm: %v\n%s", err, out)
				}
				putBack()
				return
			}
		}
	}
	t.Fatalf("no segment under %s", prefix)
}

// fixtureData is the appliance's data disks, without its system disk.
func fixtureData(a *camrec.Appliance) []qemu.Disk {
	return a.Disks()[1:]
}

// badRelease copies the camrec 8 release into a new folder and lets
// change spoil it; resign signs its manifest again with the trusted key.
func badRelease(t *testing.T, r camrecRelease, change func(dir string, m *release.Manifest) (resign bool)) camrecRelease {
	t.Helper()
	dir := t.TempDir()
	names, _ := filepath.Glob(filepath.Join(r.dir, "*"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(n)), data, 0o644)
	}
	m := *r.m
	m.Layout.Partitions = append([]release.Partition(nil), r.m.Layout.Partitions...)
	if change(dir, &m) {
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		keyFile, _ := signingKey(t)
		sk, err := sign.LoadPrivateKey(keyFile, "")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644)
		os.WriteFile(filepath.Join(dir, "manifest.json"+sign.Ext), sign.Sign(sk, data, "passeur release"), 0o644)
	}
	return camrecRelease{dir: dir, pub: r.pub, m: &m}
}

// TestMigrateRefusals runs migrations that must not start: a damaged,
// unsigned, wrongly signed, foreign or oversized release, and an installed
// version the release does not migrate. Each ends in its named error, and
// no disk but the key changes by a single byte.
func TestMigrateRefusals(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 23})
	c := v7(t, camrec.VariantC, camrec.Options{Seed: 24})
	flip := func(name string, at func(size int) int) func(string, *release.Manifest) bool {
		return func(dir string, _ *release.Manifest) bool {
			p := filepath.Join(dir, name)
			data, _ := os.ReadFile(p)
			data[at(len(data))] ^= 0x10
			os.WriteFile(p, data, 0o644)
			return false
		}
	}
	for _, tc := range sample(t, 2, []struct {
		name   string
		app    *camrec.Appliance
		change func(string, *release.Manifest) bool
		want   []string // in the run's errors and refusals
	}{
		{"flipped byte", a, flip("root.img.zst", func(n int) int { return n / 2 }),
			[]string{"artifact does not match the manifest", "artifact root as stored has SHA-256"}},
		{"truncated artifact", a, func(dir string, _ *release.Manifest) bool {
			p := filepath.Join(dir, "esp.img.zst")
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()/2)
			return false
		}, []string{"artifact does not match the manifest", "artifact esp as stored is"}},
		{"unsigned", a, func(dir string, _ *release.Manifest) bool {
			os.Remove(filepath.Join(dir, "manifest.json"+sign.Ext))
			return false
		}, []string{"no valid release on the install media", "no signature"}},
		{"signed by another key", a, func(dir string, _ *release.Manifest) bool {
			_, priv, err := sign.GenerateKey("")
			if err != nil {
				t.Fatal(err)
			}
			kf := filepath.Join(t.TempDir(), "other.key")
			os.WriteFile(kf, priv, 0o600)
			sk, err := sign.LoadPrivateKey(kf, "")
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
			os.WriteFile(filepath.Join(dir, "manifest.json"+sign.Ext), sign.Sign(sk, data, "not ours"), 0o644)
			return false
		}, []string{"no valid release on the install media", "signature"}},
		{"wrong architecture", a, func(_ string, m *release.Manifest) bool { m.Arch = "arm64"; return true },
			[]string{"no valid release on the install media", "release is for another architecture: camrec 8.0.0 is for arm64"}},
		{"layout too big", a, func(_ string, m *release.Manifest) bool {
			m.Layout.Partitions[1].Size = release.Size{Bytes: 1 << 30}
			return true
		}, []string{"preflight failed", "target layout", "layout larger than disk"}},
		{"version 7.12", c, func(string, *release.Manifest) bool { return false },
			[]string{"preflight failed", "camrec 7.12", "cannot be migrated to 8.0.0"}},
	}) {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			key := makeKey(t, badRelease(t, r, tc.change), 512<<20, 32)
			before := hashes(t, tc.app.Disks())
			m := migrate(t, append(tc.app.Disks(), key), "")
			sameHashes(t, tc.name, before, hashes(t, tc.app.Disks()))
			if m.health != nil {
				t.Fatal("the migration went through")
			}
			said := strings.Join(m.errors, "\n")
			for _, ev := range m.events {
				if ev.Type == "release" {
					said += "\n" + string(ev.Raw)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(said, w) {
					t.Errorf("the run does not say %q:\n%s", w, said)
				}
			}
			if len(m.errors) == 0 {
				t.Error("no error event")
			}
		})
	}
}

// migrationCut is a point of a migration the power is cut at: right after
// a journal record, or during an image write once a fraction of it is on
// the disk (a progress event).
type migrationCut struct {
	step, state string
	fraction    float64 // of the write step's bytes, for state "progress"
}

func (c migrationCut) String() string {
	if c.state == "progress" {
		return fmt.Sprintf("%s-%.0f%%", strings.ReplaceAll(c.step, " ", "-"), 100*c.fraction)
	}
	return strings.ReplaceAll(c.step, " ", "-") + "-" + c.state
}

// migrationCuts spread over every step: the rollback save, backup, release check, reattach,
// each image write at several offsets, the state partition, fstab,
// restore, the table, the boot.
var migrationCuts = []migrationCut{
	{step: steps.Plan, state: journal.StateDone},
	{step: steps.Save, state: journal.StateBegun},
	{step: steps.Save, state: journal.StateDone},
	{step: steps.Backup, state: journal.StateBegun},
	{step: steps.Backup, state: journal.StateDone},
	{step: steps.Complete, state: journal.StateDone},
	{step: steps.Reattach, state: journal.StateDone},
	{step: steps.Write + "esp", state: journal.StateBegun},
	{step: steps.Write + "esp", state: "progress", fraction: 0.25},
	{step: steps.Write + "esp", state: "progress", fraction: 0.6},
	{step: steps.Write + "esp", state: journal.StateDone},
	{step: steps.Write + "root", state: journal.StateBegun},
	{step: steps.Write + "root", state: journal.StateDone},
	{step: steps.State, state: journal.StateBegun},
	{step: steps.State, state: journal.StateDone},
	{step: steps.Fstab, state: journal.StateDone},
	{step: steps.Restore, state: journal.StateBegun},
	{step: steps.Restore, state: journal.StateDone},
	{step: steps.Table, state: journal.StateBegun},
	{step: steps.Table, state: journal.StateDone},
	{step: steps.Boot, state: journal.StateBegun},
	{step: steps.Boot, state: journal.StateDone},
}

// cutMigration boots a migration, with more passeur keys, and kills
// QEMU, as a power cut, at c.
func cutMigration(t *testing.T, disks []qemu.Disk, c migrationCut, cmdline string) {
	t.Helper()
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: disks,
		Cmdline: "passeur.unattended=yes passeur.mode=migrate " + cmdline})
	ev, err := vm.WaitMatch(3*bootTimeout, c.String(), func(ev event.Event) bool {
		switch ev.Type {
		case "journal":
			var rec journal.Record
			ev.Decode(&rec)
			return rec.Step == c.step && (rec.State == c.state || c.state == "progress" && rec.State == journal.StateDone)
		case "progress":
			var p progress.Report
			ev.Decode(&p)
			return c.state == "progress" && p.Label == c.step && float64(p.Done) >= c.fraction*float64(p.Total)
		case "error", "idle":
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	switch ev.Type {
	case "error", "idle":
		t.Fatalf("the migration stopped before %s: %s", c, ev.Raw)
	case "journal":
		if c.state == "progress" {
			t.Logf("%s: the write ended before a progress report that far; cut after it", c)
		}
	}
}

// TestMigratePowerCuts cuts the power at points spread over every step of
// a migration of fixture (b), each boot taking up what the previous one
// left; the last boot completes it, and the new system's health report and
// the data are those of an uninterrupted migration. The default run cuts
// at a sample of six points, the long run at all twenty-two.
func TestMigratePowerCuts(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantB, camrec.Options{Seed: 21})
	key := passeurKey(t, r)
	disks := append(a.Disks(), key)
	data := fixtureData(a)
	before := hashes(t, data)
	kept, _ := partition(t, a.System.Path, 2)
	keptSum := fileSHA(t, kept)
	cuts := sample(t, 6, migrationCuts)
	if only := os.Getenv("PASSEUR_CUTS"); only != "" { // e.g. write-esp-begun,table-done
		cuts = nil
		for _, c := range migrationCuts {
			if strings.Contains(","+only+",", ","+c.String()+",") {
				cuts = append(cuts, c)
			}
		}
	}
	for _, c := range cuts {
		cutMigration(t, disks, c, os.Getenv("PASSEUR_CMDLINE"))
		sameHashes(t, "power cut at "+c.String(), before, hashes(t, data))
	}
	m := migrate(t, disks, os.Getenv("PASSEUR_CMDLINE"))
	if got := m.healthy(t); !reflect.DeepEqual(got, a.Expected) {
		t.Errorf("health report after the power cuts\n got %+v\nwant %+v", got, a.Expected)
	}
	sameHashes(t, "migration after power cuts", before, hashes(t, data))
	if img, _ := partition(t, a.System.Path, 4); fileSHA(t, img) != keptSum {
		t.Error("the kept data partition changed")
	}
	runs := runDirs(t, keyTree(t, key.Path), "camrec-b")
	if len(runs) != 1 {
		t.Fatalf("%d run folders, want the one run taken up again: %v", len(runs), runs)
	}
	if err := sha256sumOK(runs[0]); err != nil || !backup.IsComplete(runs[0]) {
		t.Errorf("backup of the migration: complete %v, %v", backup.IsComplete(runs[0]), err)
	}
	// The new system keeps its backup secret on its state partition, and
	// the backup on the key is sealed with it.
	state, _ := partition(t, a.System.Path, 3)
	if err := backup.CheckSeal(runs[0], []byte(debugfs(t, state, "cat /passeur/backup.secret"))); err != nil {
		t.Errorf("the migration's backup and the new system's secret: %v", err)
	}
	recs, _ := journal.Read(filepath.Join(runs[0], journal.File))
	resumed := 0
	for _, rec := range recs {
		if rec.State == journal.StateResumed {
			resumed++
		}
	}
	if resumed != len(cuts) {
		t.Errorf("the journal records %d resumptions, want %d (one per cut)", resumed, len(cuts))
	}
	// No fsck.vfat -n here: a key pulled by a power cut keeps its dirty
	// bit (Linux clears it only when it set it), which fsck reports.
	if got := bootV8(t, a.Disks()); !reflect.DeepEqual(got, a.Expected) {
		t.Errorf("health report under UEFI\n got %+v\nwant %+v", got, a.Expected)
	}
}

// flakyRepo serves a repository folder on the host's loopback and drops
// the connection once, after 1 MiB, on the first request for dropFile. It
// records every request with its Range header.
type flakyRepo struct {
	dir, dropFile string
	mu            sync.Mutex
	dropped       bool
	requests      []string
}

func (f *flakyRepo) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, strings.TrimSpace(req.URL.Path+" "+req.Header.Get("Range")))
	drop := !f.dropped && strings.HasSuffix(path.Base(req.URL.Path), "."+f.dropFile) // <sha256>.<name>
	f.dropped = f.dropped || drop
	f.mu.Unlock()
	if !drop {
		http.FileServer(http.Dir(f.dir)).ServeHTTP(w, req)
		return
	}
	data, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(req.URL.Path)))
	if err != nil || len(data) <= 1<<20 {
		http.Error(w, "test server: file too small to cut", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data[:1<<20])
	if hj, ok := w.(http.Hijacker); ok {
		w.(http.Flusher).Flush()
		conn, _, _ := hj.Hijack()
		conn.Close()
	}
}

func (f *flakyRepo) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// TestMigrateFromRepository migrates fixture (a) with a key that holds no
// release, only a config naming an HTTP repository served on the host
// (reached through restrict=on user networking and guestfwd) and its
// "stable" tag: the release is fetched onto the key, its download resumed
// with a Range request after the server drops the connection, and v8
// reports what v7 held.
func TestMigrateFromRepository(t *testing.T) {
	r := camrec8(t)
	repoDir := publish(t, r)
	srv := &flakyRepo{dir: repoDir, dropFile: "esp.img.zst"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(l)
	defer hs.Close()

	a := v7(t, camrec.VariantA, camrec.Options{Seed: 25})
	img := filepath.Join(t.TempDir(), "key.img")
	if err := fixture.Key(img, 512<<20, 32, nil, map[string]string{
		medialayout.Marker: `{"format":1}`,
		config.File:        `{"repo": "http://10.0.2.100", "release": "stable"}`,
	}); err != nil {
		t.Fatal(err)
	}
	key := qemu.Disk{Path: img, Bus: qemu.USB, Serial: "PASSEUR-KEY"}
	data := fixtureData(a)
	before := hashes(t, data)
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: append(a.Disks(), key),
		Net: true, GuestFwd: map[string]string{"10.0.2.100:80": l.Addr().String()},
		Cmdline: "passeur.unattended=yes passeur.mode=migrate"})
	m := finished(t, vm)
	if got := m.healthy(t); !reflect.DeepEqual(got, a.Expected) {
		t.Errorf("health report\n got %+v\nwant %+v", got, a.Expected)
	}
	sameHashes(t, "migration from the repository", before, hashes(t, data))
	var dl downloadEvent
	m.decode(t, "download", &dl)
	if dl.Release != "releases/camrec-8.0.0" || dl.Resumed < 1 {
		t.Errorf("download event %+v: want releases/camrec-8.0.0, resumed", dl)
	}
	var route routeEvent
	m.decode(t, "route", &route)
	if route.Want != "8.0.0" || route.Next != "8.0.0" || route.Why != "tag stable" || !strings.HasPrefix(route.From, "7.14") {
		t.Errorf("route event %+v: want 7.14… to 8.0.0 by the tag stable", route)
	}
	stored := func(name string) string {
		return "/targets/camrec/8.0.0/" + fileSHA(t, filepath.Join(r.dir, name)) + "." + name
	}
	reqs := strings.Join(srv.log(), "\n")
	for _, want := range []string{"/metadata/2.root.json", "/metadata/timestamp.json", stored("manifest.json.minisig"),
		stored("esp.img.zst") + "\n", stored("esp.img.zst") + " bytes=1048576-", stored("root.img.zst")} {
		if !strings.Contains(reqs+"\n", want) {
			t.Errorf("the server saw no request %q:\n%s", strings.TrimSpace(want), reqs)
		}
	}
	tree := t.TempDir()
	if _, err := fixture.Run("", "mcopy", "-s", "-n", "-i", key.Path, "::/releases", tree); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"manifest.json", "manifest.json.minisig", "esp.img.zst", "root.img.zst"} {
		if fileSHA(t, filepath.Join(tree, "releases/camrec-8.0.0", f)) != fileSHA(t, filepath.Join(r.dir, f)) {
			t.Errorf("releases/camrec-8.0.0/%s on the key differs from the repository's", f)
		}
	}
	fsckClean(t, key.Path)
}

// downloadEvent is the agent's "download" event.
type downloadEvent struct {
	Release  string
	Files    int
	Bytes    int64
	Attempts int
	Resumed  int
}

// routeEvent is the agent's "route" event: what the repository gives the box.
type routeEvent struct {
	Repo, Product, From, Want, Why, Next string
	Hops, Through                        []string
}

// TestInstall installs camrec 8 on a blank disk with passeur.mode=install,
// formatting the one blank data disk the operator names: the new system
// boots (kexec, then UEFI from its own disk) and reports a fresh appliance
// with that volume mounted; a disk holding something else is untouched.
// Naming a disk that is not blank for formatting is refused, nothing
// written.
func TestInstall(t *testing.T) {
	r := camrec8(t)
	dir := t.TempDir()
	sys := qemu.Disk{Path: filepath.Join(dir, "sys.img"), Bus: qemu.VirtioBlk, Serial: "NEW-SYS"}
	data := qemu.Disk{Path: filepath.Join(dir, "data.img"), Bus: qemu.SATA, Serial: "NEW-DATA1"}
	other := qemu.Disk{Path: filepath.Join(dir, "other.img"), Bus: qemu.VirtioBlk, Serial: "OTHER"}
	for _, d := range []struct {
		p    string
		size int64
	}{{sys.Path, 512 << 20}, {data.Path, 64 << 20}} {
		if err := fixture.Blank(d.p, d.size); err != nil {
			t.Fatal(err)
		}
	}
	if err := fixture.Mkfs(other.Path, "ext4", "someone-else", 32<<20); err != nil {
		t.Fatal(err)
	}
	key := passeurKey(t, r)
	disks := []qemu.Disk{sys, data, other, key}

	// Refused: the disk named for formatting holds a filesystem.
	before := hashes(t, []qemu.Disk{sys, data, other})
	m := migrate(t, disks, "passeur.mode=install passeur.format-data=OTHER")
	sameHashes(t, "refused install", before, hashes(t, []qemu.Disk{sys, data, other}))
	if m.health != nil || !strings.Contains(strings.Join(m.errors, "\n"), "passeur installs on, and formats, blank disks only") {
		t.Fatalf("format-data of a disk holding ext4: errors %v", m.errors)
	}

	otherSum := fileSHA(t, other.Path)
	m = migrate(t, disks, "passeur.mode=install passeur.format-data=NEW-DATA1")
	got := m.healthy(t)
	out, err := fixture.Run("", "blkid", "-o", "export", data.Path)
	if err != nil {
		t.Fatal(err)
	}
	uuid := regexp.MustCompile(`(?m)^UUID=(\S+)`).FindStringSubmatch(out)
	if uuid == nil || !strings.Contains(out, "LABEL=rec-1") || !strings.Contains(out, "TYPE=ext4") {
		t.Fatalf("the data disk after the install: %s", out)
	}
	want := camrec.Report{Product: "camrec", Version: "8.0.0", Volumes: []string{uuid[1]}, OK: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("health report after kexec\n got %+v\nwant %+v", got, want)
	}
	if fileSHA(t, other.Path) != otherSum {
		t.Error("the disk holding someone else's filesystem changed")
	}
	if out, err := fixture.Run("", "e2fsck", "-fn", data.Path); err != nil {
		t.Errorf("e2fsck -fn on the formatted data disk: %v\n%s", err, out)
	}
	if got := bootV8(t, []qemu.Disk{sys, data, other}); !reflect.DeepEqual(got, want) {
		t.Errorf("health report under UEFI\n got %+v\nwant %+v", got, want)
	}
}
