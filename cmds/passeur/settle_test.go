package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/obtain"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu/fixture"
)

// layRun lays in the staging image img a run of box-1 as the rescue's
// vfat mount would (the image is made again of what it held and the
// run's folder): mark fills the run's folder and journal.
func layRun(t *testing.T, img string, now time.Time, mark func(run string, j *journal.Journal)) {
	t.Helper()
	i, err := staging.OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	root, err := os.OpenRoot(work)
	if err != nil {
		t.Fatal(err)
	}
	err = i.CopyOut(".", root, "tree", 1<<30)
	root.Close()
	i.Close()
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(work, "tree", "Backup", "box-1", "20261202T120000Z-migrate")
	os.RemoveAll(run) // the one an earlier call laid
	os.MkdirAll(run, 0o755)
	j, err := journal.Create(filepath.Join(run, journal.File), journal.Header{Mode: "migrate", Machine: "vda", Host: "box-1", Release: "camrec-8.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	mark(run, j)
	j.Close()
	st, _ := os.Stat(img)
	if err := staging.Make(img, st.Size(), filepath.Join(work, "tree"), now); err != nil {
		t.Fatal(err)
	}
}

// TestSettle: camrec 8.1.0 staged on a box running 8.0.0, then a run in
// the staging image as the rescue leaves it when it boots the new system
// (journal at the boot step, a backup). On that new system passeur stage
// -health settles it: a box on another version, or a run that did not
// boot, is left to the rescue; an unhealthy report is reported failed and
// leaves the area whole; a fleet server that cannot be reached leaves the
// image for the next run; healthy and reported, the backup and the
// finished journal are kept under runs/ and the image and rescue go. An
// area in a folder its release does not declare is not touched.
func TestSettle(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0", "8.1.0")
	rescue := t.TempDir()
	for _, name := range repo.RescueFiles {
		os.WriteFile(filepath.Join(rescue, name), []byte("the "+name+"\n"), 0o644)
	}
	v.Edit(func(r *editor.Repo) error {
		if err := r.PublishRescue("qemu-x86_64", rescue); err != nil {
			return err
		}
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.1.0", nil)
	})
	system := func(ver string) string { return camrecRoot(t, ver) }
	vol := staging.Volume{Point: t.TempDir(), Dev: "/dev/vdb1", Disk: "vdb", Label: "rec-a", UUID: "0a1b2c3d-0000-4000-8000-000000000001", Type: "ext4"}
	volumes := func(m *release.Manifest, want string) ([]staging.Volume, error) {
		if !m.StagingVolume(vol.Label) {
			return nil, staging.ErrNoPlace
		}
		return []staging.Volume{vol}, nil
	}
	dir := filepath.Join(vol.Point, "passeur-staging")
	img := filepath.Join(dir, staging.ImageFile)
	o := stageOptions{system: system("8.0.0"), root: v.Root, trusted: []minisign.PublicKey{v.PK}, repo: v.Srv.URL, work: t.TempDir(),
		box: obtain.Box{Account: "acme"}, fetch: fetch.Options{Attempts: 1}, board: "qemu-x86_64", volumes: volumes,
		free:     func(string) (int64, error) { return 1 << 40, nil },
		identity: func() string { return "box-1" }, now: func() time.Time { return v.Now }}
	if _, err := stage(context.Background(), o); err != nil {
		t.Fatal(err)
	}

	// The rescue's run, laid in the image as its vfat mount would: the
	// image is made again of what it held and the run's folder.
	backup := []byte("the backup of box-1's configuration and index\n")
	withRun := func(booted bool) {
		layRun(t, img, v.Now, func(run string, j *journal.Journal) {
			// A backup keeps files under their old paths: deep folders.
			os.MkdirAll(filepath.Join(run, "files/var/lib/camrec/index"), 0o755)
			os.WriteFile(filepath.Join(run, "files/var/lib/camrec/index/segments.v1"), backup, 0o644)
			for _, s := range []string{steps.Plan, steps.Backup, steps.Table} {
				j.Begin(s, nil)
				j.Complete(s, nil)
			}
			if booted {
				j.Begin(steps.Boot, nil)
				j.Complete(steps.Boot, map[string]string{"how": "kexec"})
			}
		})
	}
	var reports []wire.Report
	var unreachable bool
	report := func(r wire.Report) error {
		if unreachable {
			return errors.New("dial tcp 10.0.2.101:80: connect: network is unreachable")
		}
		reports = append(reports, r)
		return nil
	}
	healthy := []byte(`{"product":"camrec","version":"8.1.0","ok":true}`)
	sick := []byte(`{"product":"camrec","version":"8.1.0","ok":false}`)
	settleOn := func(sys string, health []byte) ([]settled, error) {
		var log bytes.Buffer
		return settle(settleOptions{system: sys, health: health, trusted: []minisign.PublicKey{v.PK}, volumes: volumes, report: report, log: &log})
	}
	sum := func() string { return fileSum(t, img) }

	// A run that did not reach the boot step is the rescue's.
	withRun(false)
	before := sum()
	if s, err := settleOn(system("8.1.0"), healthy); err != nil || len(s) != 0 || sum() != before {
		t.Errorf("a run before its boot step: %+v %v, want nothing done", s, err)
	}
	withRun(true)
	before = sum()
	// The box runs 8.0.0: the new system is not running, the rescue's.
	if _, err := settleOn(system("8.0.0"), healthy); err == nil || !strings.Contains(err.Error(), "left to the rescue") || sum() != before {
		t.Errorf("on 8.0.0: %v, want the run left to the rescue", err)
	}
	// Unhealthy: reported failed, the area stays whole.
	s, err := settleOn(system("8.1.0"), sick)
	if err != nil || len(s) != 1 || s[0].OK || s[0].Kept != "" || sum() != before {
		t.Errorf("unhealthy: %+v %v, want reported and the area kept", s, err)
	}
	if len(reports) != 1 || reports[0].State != wire.StateFailed || reports[0].Step != steps.Health || !strings.Contains(reports[0].Error, "passeur.staged=") {
		t.Errorf("unhealthy: reports %+v, want one failed at the health step", reports)
	}
	// Healthy, but the fleet server cannot be reached: the image stays.
	unreachable = true
	if _, err := settleOn(system("8.1.0"), healthy); err == nil || !strings.Contains(err.Error(), "stays until the box reports") {
		t.Errorf("unreachable: %v, want the area kept until it reports", err)
	}
	if _, err := os.Stat(img); err != nil {
		t.Errorf("unreachable: the image went: %v", err)
	}
	// The next run reports, keeps the run, removes image and rescue.
	unreachable = false
	s, err = settleOn(system("8.1.0"), healthy)
	kept := filepath.Join(dir, RunsDir, "box-1", "20261202T120000Z-migrate")
	if err != nil || len(s) != 1 || !s[0].OK || s[0].Kept != kept || s[0].Version != "8.1.0" {
		t.Fatalf("healthy: %+v %v", s, err)
	}
	if len(reports) != 2 || reports[1].State != wire.StateDone || reports[1].Version != "8.1.0" || string(reports[1].Health) != string(healthy) {
		t.Errorf("healthy: reports %+v, want done 8.1.0 with the health report", reports)
	}
	if got, _ := os.ReadFile(filepath.Join(kept, "files/var/lib/camrec/index/segments.v1")); !bytes.Equal(got, backup) {
		t.Errorf("the kept backup is %q", got)
	}
	recs, err := journal.Read(filepath.Join(kept, journal.File))
	if err != nil || recs[len(recs)-1].State != journal.StateFinished {
		t.Fatalf("the kept journal: %v %+v", err, recs)
	}
	var outcome struct {
		OK     bool
		Health json.RawMessage
	}
	if json.Unmarshal(recs[len(recs)-1].Detail, &outcome); !outcome.OK || string(outcome.Health) != string(healthy) {
		t.Errorf("the kept journal's outcome: %s", recs[len(recs)-1].Detail)
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != RunsDir {
		t.Errorf("the staging folder holds %v, want %s only", names, RunsDir)
	}
	if parts, _ := os.ReadDir(filepath.Join(dir, RunsDir, "box-1")); len(parts) != 1 {
		t.Errorf("runs/box-1 holds %d entries, want the run only", len(parts))
	}
	// Nothing left to settle.
	if s, err := settleOn(system("8.1.0"), healthy); err != nil || len(s) != 0 || len(reports) != 2 {
		t.Errorf("settled twice: %+v %v", s, err)
	}

	// The recordings filled the volume since the rescue ran: no room to
	// copy the run out. The box still reports done and leaves the rescue;
	// the whole image is kept aside, which needs no room.
	if os.Getuid() == 0 {
		full := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m", "passeur-test", full).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", full).Run() })
		point := vol.Point
		vol.Point, o.system, o.work = full, system("8.0.0"), t.TempDir()
		if _, err := stage(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		fullImg := filepath.Join(full, "passeur-staging", staging.ImageFile)
		layRun(t, fullImg, v.Now, func(run string, j *journal.Journal) {
			os.WriteFile(filepath.Join(run, "config.tar"), backup, 0o644)
			j.Begin(steps.Boot, nil)
			j.Complete(steps.Boot, map[string]string{"how": "kexec"})
		})
		before := fileSum(t, fullImg)
		fill, _ := os.Create(filepath.Join(full, "recordings.mkv"))
		for _, err := fill.Write(make([]byte, 1<<20)); err == nil; _, err = fill.Write(make([]byte, 1<<20)) {
		}
		fill.Close()
		n := len(reports)
		var log bytes.Buffer
		// The fleet server out of reach first: nothing moves.
		unreachable = true
		if _, err := settle(settleOptions{system: system("8.1.0"), health: healthy, trusted: []minisign.PublicKey{v.PK}, volumes: volumes, report: report, log: &log}); err == nil ||
			!strings.Contains(err.Error(), "stays until the box reports") || fileSum(t, fullImg) != before {
			t.Errorf("no room, unreachable: %v, want the image left as it was until the box reports", err)
		}
		if kept, _ := filepath.Glob(filepath.Join(full, "passeur-staging", "media-*")); len(kept) != 0 {
			t.Errorf("no room, unreachable: %v kept aside before the report", kept)
		}
		unreachable = false
		s, err := settle(settleOptions{system: system("8.1.0"), health: healthy, trusted: []minisign.PublicKey{v.PK}, volumes: volumes, report: report, log: &log,
			now: func() time.Time { return v.Now.Add(time.Hour) }})
		aside := filepath.Join(full, "passeur-staging", "media-"+v.Now.Add(time.Hour).UTC().Format("20060102T150405Z")+".fat")
		if err != nil || len(s) != 1 || !s[0].Aside || s[0].Kept != aside {
			t.Fatalf("no room: %+v %v, want the image kept aside as %s", s, err, aside)
		}
		if len(reports) != n+1 || reports[n].State != wire.StateDone {
			t.Errorf("no room: reports %+v, want done", reports[n:])
		}
		if fileSum(t, aside) != before {
			t.Error("the image kept aside is not the image as the rescue left it")
		}
		left, _ := os.ReadDir(filepath.Join(full, "passeur-staging"))
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != filepath.Base(aside)+" "+RunsDir {
			t.Errorf("no room: the staging folder holds %v, want the image aside and an empty %s", names, RunsDir)
		}
		if s, err := settle(settleOptions{system: system("8.1.0"), health: healthy, trusted: []minisign.PublicKey{v.PK}, volumes: volumes, report: report, log: &log}); err != nil || len(s) != 0 {
			t.Errorf("settled again: %+v %v, want nothing to do", s, err)
		}
		vol.Point = point
	}

	// An image in a folder the release does not declare is not its.
	o.system, o.work = system("8.0.0"), t.TempDir()
	if _, err := stage(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	withRun(true)
	other := filepath.Join(vol.Point, "elsewhere")
	if err := os.Rename(dir, other); err != nil {
		t.Fatal(err)
	}
	if _, err := settleOn(system("8.1.0"), healthy); !errors.Is(err, ErrNotOurs) {
		t.Errorf("an undeclared folder: %v, want ErrNotOurs", err)
	}
	if _, err := os.Stat(filepath.Join(other, staging.ImageFile)); err != nil {
		t.Errorf("the undeclared folder's image: %v", err)
	}
	// A health report that is not one settles nothing.
	if _, err := settleOn(system("8.1.0"), []byte(`{"ok":"yes"}`)); err == nil {
		t.Error("a health report without a boolean ok was taken")
	}
}

// fileSum is the SHA-256 of the file at p.
func fileSum(t *testing.T, p string) string {
	t.Helper()
	sum, err := fixture.SHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}
