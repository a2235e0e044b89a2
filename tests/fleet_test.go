package tests

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

var (
	versionsMu sync.Mutex
	versions   = map[string]*versionBuild{}
)

type versionBuild struct {
	once sync.Once
	rel  camrecRelease
}

// camrecVersions builds the versions at once (the builds overlap), each
// once per test binary.
func camrecVersions(t *testing.T, vs ...string) []camrecRelease {
	t.Helper()
	keyFile, pub := signingKey(t)
	out := make([]camrecRelease, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		if v == "8.0.0" {
			out[i] = camrec8(t)
			continue
		}
		versionsMu.Lock()
		b := versions[v]
		if b == nil {
			b = &versionBuild{}
			versions[v] = b
		}
		versionsMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.once.Do(func() {
				b.rel = camrecRelease{dir: filepath.Join(scratch, "camrec-"+v), pub: pub}
				b.rel.m, b.rel.err = camrec.BuildV8Version(repoRoot(t), filepath.Join(repoRoot(t), ".cache"), b.rel.dir, keyFile, v, io.Discard)
			})
			out[i] = b.rel
		}()
	}
	wg.Wait()
	for i, r := range out {
		if r.err != nil {
			t.Fatalf("build camrec %s: %v", vs[i], r.err)
		}
	}
	return out
}

// TestFleet is the thin-client vendor's procedure (seeds/002) end to end
// on real boots, boxes pointed at their local repository server only (the
// vendor's sees none of their requests): the vendor's repository on the
// host's loopback; the customer's mirror synced from it for account acme
// with its test tag test-8.1 and served by passeur serve. Box 2, a camrec
// 7.14.0.3 box given no tag, takes the account default 8.0.0; the default
// moves to 8.1.0 (the mirror syncs first) and box 2 takes it, an install
// whose state lies over its read-only root migrated with its configuration
// and index; the vendor publishes 8.2.0 behind a barrier at 8.1.0; the
// mirror, compromised, replays its old metadata: box 2, booted from a new
// key, refuses it, its system's state remembering the newer, and nothing
// is written; repaired, it
// serves 8.2.0 and box 2 takes it. After each migration the next boot
// takes the run up and reports it: the fleet page shows box 2's version.
// A look-alike of box 2 left on 8.0.0 then goes 8.0.0 → 8.1.0 → 8.2.0 in
// one session, 8.1.0 passed through without a boot. test-long also
// installs a box given the test tag (8.1.0) and one on the default
// (8.0.0), and, once the vendor says 8.1.0 must boot once, takes another
// look-alike to 8.1.0 and boots it; the boot that takes that run up goes
// on to 8.2.0, its 8.1.0 index damaged on its state before it: kept
// aside, rebuilt from the recordings.
func TestFleet(t *testing.T) {
	rels := camrecVersions(t, "8.0.0", "8.1.0", "8.2.0")
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")

	// The vendor's repository.
	vendorDir, keys := devRepo(t)
	root, err := os.ReadFile(filepath.Join(vendorDir, repo.MetadataDir, "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	editRepo(t, vendorDir, keys, func(r *editor.Repo) error {
		if _, err := publishReleases(r, rels...); err != nil {
			return err
		}
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		if err := r.SetDefault("acme", "camrec", "8.0.0", nil); err != nil {
			return err
		}
		return r.SetAccountTag("acme", "camrec", "test-8.1", "8.1.0")
	})
	var vendorHits atomic.Int32
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vendorHits.Add(1)
		http.FileServer(http.Dir(vendorDir)).ServeHTTP(w, r)
	}))
	defer vendor.Close()

	// The customer's mirror goes first.
	mirrorDir := filepath.Join(t.TempDir(), "mirror")
	sync := func() *mirror.Result {
		t.Helper()
		res, err := mirror.Sync(context.Background(), mirror.Options{Upstream: vendor.URL, Root: root, Account: "acme", Tag: "test-8.1",
			Dir: mirrorDir, Fetch: fetch.Options{Attempts: 2}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mirror synced: default %s, holds %v (%d files, %d bytes)", res.Record.Default, res.Record.Versions, res.Files, res.Bytes)
		return res
	}
	if res := sync(); strings.Join(res.Record.Versions, " ") != "8.0.0 8.1.0" {
		t.Fatalf("the mirror holds %v, want 8.0.0 8.1.0", res.Record.Versions)
	}
	oldMetadata := t.TempDir()
	if err := os.CopyFS(oldMetadata, os.DirFS(filepath.Join(mirrorDir, repo.MetadataDir))); err != nil {
		t.Fatal(err)
	}
	// passeur serve -repo mirror -fleet-db: the boxes report to it.
	store, err := fleet.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, "box-2", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	lab := serveLabFleet(t, writeBundle(t, art, nil), mirrorDir, &fleet.Server{Store: store})
	fwd := map[string]string{"10.0.2.100:80": lab.addr}
	keyFor := func(cfg string) qemu.Disk {
		img := filepath.Join(t.TempDir(), "key.img")
		if err := fixture.Key(img, 512<<20, 32, nil, map[string]string{medialayout.Marker: `{"format":1}`, config.File: cfg}); err != nil {
			t.Fatal(err)
		}
		return qemu.Disk{Path: img, Bus: qemu.USB, Serial: "PASSEUR-KEY"}
	}
	boot := func(disks []qemu.Disk, mode string) migration {
		t.Helper()
		before := vendorHits.Load()
		vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: disks, Net: true, GuestFwd: fwd,
			Cmdline: "passeur.unattended=yes passeur.mode=" + mode})
		m := finished(t, vm)
		if vendorHits.Load() != before {
			t.Error("a box reached the vendor's repository: boxes read their mirror only")
		}
		return m
	}

	// A box of the account's, given no tag: it takes the default whatever
	// its distance, through the mirror only; the mirror hears from it once
	// the new system has reported its health.
	routeTo := func(m migration, from, want, hops, next string) {
		t.Helper()
		var route routeEvent
		m.decode(t, "route", &route)
		if route.From != from || route.Want != want || strings.Join(route.Hops, " ") != hops || route.Next != next {
			t.Errorf("route %+v: want %s → %s by %s, this session to %s", route, from, want, hops, next)
		}
	}
	formatsOf := func(m migration) (index, config int) {
		t.Helper()
		var raw struct {
			IndexFormat  int `json:"index_format"`
			ConfigFormat int `json:"config_format"`
		}
		m.decode(t, "health", &raw)
		return raw.IndexFormat, raw.ConfigFormat
	}
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 41})
	key := keyFor(`{"repo": "http://10.0.2.100/repo", "account": "acme", "report": "http://10.0.2.100/fleet/report", "box": "box-2", "report-token": "` + token + `"}`)
	data := fixtureData(a)
	dataBefore := hashes(t, data)
	migrated := func(m migration, version string) {
		t.Helper()
		want := a.Expected
		want.Version = version
		if got := m.healthy(t); !reflect.DeepEqual(got, want) {
			t.Errorf("health report of %s\n got %+v\nwant %+v", version, got, want)
		}
		sameHashes(t, "migration to "+version, dataBefore, hashes(t, data))
	}
	// takeUp is the box's next rescue boot: it ends the run (the new
	// system's health is journaled) and reports it to the fleet.
	var takeUpOf func(disks []qemu.Disk, key qemu.Disk, box, version string)
	takeUp := func(version string) { takeUpOf(a.Disks(), key, "box-2", version) }
	takeUpOf = func(disks []qemu.Disk, key qemu.Disk, box, version string) {
		t.Helper()
		m := boot(append(disks, key), "migrate")
		var outcome struct {
			OK     bool
			Health struct{ Version string }
		}
		m.decode(t, "outcome", &outcome)
		// The route goes on from the new system: it ends there.
		var route routeEvent
		m.decode(t, "route", &route)
		if m.event("take_up") == nil || !outcome.OK || outcome.Health.Version != version || route.From != version || route.Next != "" {
			t.Errorf("the boot after the migration to %s: take-up %v, outcome %+v, route %+v", version, m.event("take_up") != nil, outcome, route)
		}
		if m.event("plan") != nil || len(m.errors) != 0 {
			t.Errorf("the boot after the migration to %s began a run or failed: %q", version, m.errors)
		}
		var sent struct{ State, Version, Error string }
		m.decode(t, "report", &sent)
		b, err := store.Box(box)
		if err != nil {
			t.Fatal(err)
		}
		if sent.Error != "" || b.Last == nil || b.Last.State != fleet.StateDone || b.Running == nil || b.Running.Version != version {
			t.Errorf("the fleet's record of %s after %s: sent %+v, last report %+v", box, version, sent, b.Last)
		}
		page, err := http.Get("http://" + lab.addr + fleet.Path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(page.Body)
		page.Body.Close()
		if !strings.Contains(string(body), `data-box="`+box+`"`) || !strings.Contains(string(body), version) {
			t.Errorf("the fleet page lacks %s on %s:\n%s", box, version, body)
		}
	}
	m := boot(append(a.Disks(), key), "migrate")
	routeTo(m, "7.14.0.3", "8.0.0", "8.0.0", "8.0.0")
	migrated(m, "8.0.0")
	takeUp("8.0.0")
	// Look-alikes of box 2 that stay on 8.0.0: copies of its disks now.
	lookAlike := func() []qemu.Disk {
		var disks []qemu.Disk
		dir := t.TempDir()
		for _, d := range a.Disks() {
			src := d.Path
			d.Path = filepath.Join(dir, filepath.Base(src))
			if _, err := fixture.Run("", "cp", "--sparse=always", src, d.Path); err != nil {
				t.Fatal(err)
			}
			disks = append(disks, d)
		}
		return disks
	}
	lateBox := lookAlike()
	var lateBox2 []qemu.Disk
	if os.Getenv("PASSEUR_LONG") != "" {
		lateBox2 = lookAlike()
	}

	t.Run("test boxes", func(t *testing.T) {
		longOnly(t, "the choice of a tag is host-tested (image/repo TestChoose); installs from a repository are TestNetbootInstall's")
		for _, tc := range []struct{ cfg, want, why string }{
			{`{"repo": "http://10.0.2.100/repo", "account": "acme", "release": "test-8.1"}`, "8.1.0", "tag test-8.1 of account acme"},
			{`{"repo": "http://10.0.2.100/repo", "account": "acme"}`, "8.0.0", "default of account acme"},
		} {
			disks := labDisks(t)
			m := boot(append(disks, keyFor(tc.cfg)), "install")
			var route routeEvent
			m.decode(t, "route", &route)
			if got := m.healthy(t); got.Version != tc.want || route.Why != tc.why {
				t.Errorf("%s: installed %s (%s), want %s (%s)", tc.cfg, got.Version, route.Why, tc.want, tc.why)
			}
		}
	})

	// The customer validated 8.1.0: the account default moves to it, the
	// mirror syncs first, and box 2 takes it: camrec 8.0.0 → 8.1.0, its
	// configuration and index read through its state laid over its
	// read-only root; 8.1.0's first boot steps the index to v3.
	editRepo(t, vendorDir, keys, func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	if res := sync(); strings.Join(res.Record.Versions, " ") != "8.1.0" {
		t.Fatalf("the mirror holds %v, want 8.1.0 (no rollout: no previous default kept)", res.Record.Versions)
	}
	m = boot(append(a.Disks(), key), "migrate")
	routeTo(m, "8.0.0", "8.1.0", "8.1.0", "8.1.0")
	migrated(m, "8.1.0")
	if index, _ := formatsOf(m); index != 3 {
		t.Errorf("health report of 8.1.0: index format %d, want 3", index)
	}
	takeUp("8.1.0")

	// The vendor publishes 8.2.0 behind a barrier at 8.1.0 and makes it
	// the default; the mirror syncs first.
	editRepo(t, vendorDir, keys, func(r *editor.Repo) error {
		if err := r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier = true }); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	if res := sync(); strings.Join(res.Record.Versions, " ") != "8.1.0 8.2.0" {
		t.Fatalf("the mirror holds %v, want 8.1.0 8.2.0", res.Record.Versions)
	}

	// The mirror, compromised, serves its old metadata again: validly
	// signed, not expired, older than what box 2 has seen. Booted from a
	// new key that remembers nothing, the box still refuses it: its
	// installed system's state remembers what the box verified when it
	// migrated.
	t.Run("replayed metadata", func(t *testing.T) {
		longOnly(t, "what the box's state remembers is host-tested (initramfs/agent TestRememberedOnState)")
		timestamp := filepath.Join(mirrorDir, repo.MetadataDir, "timestamp.json")
		current, err := os.ReadFile(timestamp)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := os.ReadFile(filepath.Join(oldMetadata, "timestamp.json"))
		if err := os.WriteFile(timestamp, old, 0o644); err != nil {
			t.Fatal(err)
		}
		// The mirror is repaired after.
		defer os.WriteFile(timestamp, current, 0o644)
		boxDisks := a.Disks()
		before := hashes(t, boxDisks)
		m := boot(append(boxDisks, keyFor(`{"repo": "http://10.0.2.100/repo", "account": "acme"}`)), "migrate")
		msg := strings.Join(m.errors, "\n")
		if !strings.Contains(msg, "older than what this box has seen") || !strings.Contains(m.console, "remembers newer than the media") {
			t.Errorf("replayed metadata, a new key: errors %q, want the rollback refused from what the box's state remembers", msg)
		}
		if m.event("route") != nil || m.event("journal") != nil {
			t.Error("a run began on replayed metadata")
		}
		sameHashes(t, "replayed metadata", before, hashes(t, boxDisks))
	})

	// Box 2, on the barrier, takes 8.2.0, whose first boot steps the
	// configuration to format 3.
	m = boot(append(a.Disks(), key), "migrate")
	routeTo(m, "8.1.0", "8.2.0", "8.2.0", "8.2.0")
	migrated(m, "8.2.0")
	if index, config := formatsOf(m); index != 3 || config != 3 {
		t.Errorf("health report of 8.2.0: index format %d, configuration format %d; want 3 and 3", index, config)
	}

	// A box still on 8.0.0 (a camrec 7 box migrated then, look-alike of
	// box 2, powered off since) goes 8.0.0 → 8.1.0 → 8.2.0 in one
	// session: 8.1.0 need not boot, so it is passed through, checked and
	// planned, and only 8.2.0 is written, whose first boot takes the
	// configuration and index through both releases' format steps.
	token3, err := fleet.Enroll(store, "box-3", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	lateKey := keyFor(`{"repo": "http://10.0.2.100/repo", "account": "acme", "report": "http://10.0.2.100/fleet/report", "box": "box-3", "report-token": "` + token3 + `"}`)
	before := hashes(t, lateBox[1:])
	m = boot(append(lateBox, lateKey), "migrate")
	routeTo(m, "8.0.0", "8.2.0", "8.1.0 8.2.0", "8.2.0")
	var route routeEvent
	m.decode(t, "route", &route)
	var pre struct {
		Checks []struct{ Name, Detail string }
	}
	m.decode(t, "preflight", &pre)
	source := ""
	for _, c := range pre.Checks {
		if c.Name == "source version" {
			source = c.Detail
		}
	}
	if strings.Join(route.Through, " ") != "8.1.0" || !strings.Contains(source, "camrec 8.0.0 → 8.1.0 → 8.2.0") {
		t.Errorf("through %v, source version %q: want 8.1.0 passed without a boot", route.Through, source)
	}
	want := a.Expected
	want.Version = "8.2.0"
	if got := m.healthy(t); !reflect.DeepEqual(got, want) {
		t.Errorf("8.0.0 → 8.2.0 through 8.1.0: health\n got %+v\nwant %+v", got, want)
	}
	if index, config := formatsOf(m); index != 3 || config != 3 {
		t.Errorf("8.0.0 → 8.2.0 through 8.1.0: index format %d, configuration format %d; want 3 and 3", index, config)
	}
	sameHashes(t, "the late box's data", before, hashes(t, lateBox[1:]))
	// Two boxes alike to the last byte of their disks, enrolled apart:
	// the fleet tells them apart by what each was enrolled as (box 2 has
	// not reported its 8.2.0 yet: no rescue boot since).
	takeUpOf(lateBox, lateKey, "box-3", "8.2.0")
	for box, version := range map[string]string{"box-2": "8.1.0", "box-3": "8.2.0"} {
		b, err := store.Box(box)
		if err != nil || b.Running == nil || b.Running.Version != version {
			t.Errorf("the fleet's record of %s: %+v, %v; want it on %s", box, b, err, version)
		}
	}

	// When the vendor says 8.1.0 must boot once, another box on 8.0.0
	// goes to 8.1.0 and boots it; the boot that takes that run up goes on
	// to 8.2.0.
	t.Run("boot once", func(t *testing.T) {
		longOnly(t, "each hop is a migration 8 → 8, which the default run makes three times above")
		editRepo(t, vendorDir, keys, func(r *editor.Repo) error {
			return r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.BootOnce = true })
		})
		sync()
		key := keyFor(`{"repo": "http://10.0.2.100/repo", "account": "acme"}`)
		before := hashes(t, lateBox2[1:])
		m := boot(append(lateBox2, key), "migrate")
		routeTo(m, "8.0.0", "8.2.0", "8.1.0 8.2.0", "8.1.0")
		if got := m.healthy(t); got.Version != "8.1.0" || got.SegmentsIndexed != a.Expected.SegmentsIndexed || !got.OK {
			t.Errorf("first hop: health %+v", got)
		}
		// Its 8.1.0 index is damaged on its state before the next boot,
		// which takes the first hop's run up, ends it with 8.1.0's health
		// report and goes on with the second hop: it keeps the index in
		// the backup as damaged, rebuilds it from the recordings, and
		// carries that one.
		st, put := partition(t, lateBox2[0].Path, partitionNamed(t, lateBox2[0].Path, "state"))
		index := debugfs(t, st, "cat /camrec/segments.v3")
		if !strings.HasPrefix(index, "camrec-index v3\n") {
			t.Fatalf("the 8.1.0 state's index: %.40q", index)
		}
		cut := filepath.Join(t.TempDir(), "segments.v3")
		os.WriteFile(cut, []byte(index[:len(index)/2]), 0o644)
		script := filepath.Join(t.TempDir(), "damage")
		os.WriteFile(script, []byte("rm /camrec/segments.v3\nwrite "+cut+" /camrec/segments.v3\n"), 0o644)
		if out, err := exec.Command("debugfs", "-w", "-f", script, st).CombinedOutput(); err != nil {
			t.Fatalf("debugfs: %v\n%s", err, out)
		}
		put()
		m = boot(append(lateBox2, key), "migrate")
		var outcome struct {
			OK     bool
			Health struct{ Version string }
		}
		m.decode(t, "outcome", &outcome)
		if m.event("take_up") == nil || !outcome.OK || outcome.Health.Version != "8.1.0" {
			t.Errorf("the boot after the first hop: take-up %v, outcome %+v", m.event("take_up") != nil, outcome)
		}
		routeTo(m, "8.1.0", "8.2.0", "8.2.0", "8.2.0")
		var rec struct{ Existing string }
		m.decode(t, "recovery", &rec)
		if !strings.HasPrefix(rec.Existing, "corrupt: ") || !strings.Contains(rec.Existing, "/camrec/segments.v3") {
			t.Errorf("recovery of the damaged v3 index: existing %q", rec.Existing)
		}
		if got := m.healthy(t); !reflect.DeepEqual(got, want) {
			t.Errorf("second hop: health\n got %+v\nwant %+v", got, want)
		}
		sameHashes(t, "the second late box's data", before, hashes(t, lateBox2[1:]))
	})
}

// partitionNamed is the number, in table order, of disk's GPT partition
// named name.
func partitionNamed(t *testing.T, disk, name string) int {
	t.Helper()
	out, err := fixture.Run("", "sfdisk", "--json", disk)
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Partitions []struct{ Name string } `json:"partitions"`
		} `json:"partitiontable"`
	}
	json.Unmarshal([]byte(out), &pt)
	for i, p := range pt.PartitionTable.Partitions {
		if p.Name == name {
			return i + 1
		}
	}
	t.Fatalf("%s has no partition named %s: %s", disk, name, out)
	return 0
}
