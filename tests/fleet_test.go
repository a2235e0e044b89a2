package tests

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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
	"github.com/passeur/passeur/image/sign"
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
// on real boots, boxes pointed at their local repository server only:
// the vendor's repository on the host's loopback; the customer's mirror
// synced from it for account acme with its test tag test-8.1 and served by
// passeur serve; then the vendor publishes 8.2.0 behind a barrier at 8.1.0
// and moves the default there, the mirror syncs first, and a camrec
// 7.14.0.3 box migrates to 8.1.0, the first hop of its route 8.1.0 → 8.2.0,
// reading nothing but the mirror; then the mirror, compromised, replays
// its old metadata: the box, whose key remembers the newer, refuses it and
// nothing is written; repaired, it serves the second hop, and the box,
// now a camrec 8 install (state over a read-only root), migrates from
// 8.1.0 to 8.2.0 with its configuration and index. test-long also installs a box given the test tag
// (8.1.0) and one on the default (8.0.0).
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
		for _, rel := range rels {
			pk, err := sign.LoadPublicKey(rel.pub)
			if err != nil {
				return err
			}
			if _, err := r.Publish(rel.dir, pk); err != nil {
				return err
			}
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
	token, err := fleet.Enroll(store, "box-3", "acme", "")
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

	a := v7(t, camrec.VariantA, camrec.Options{Seed: 41})
	key := keyFor(`{"repo": "http://10.0.2.100/repo", "account": "acme", "report": "http://10.0.2.100/fleet/report", "box": "box-3", "report-token": "` + token + `"}`)
	data := fixtureData(a)
	before := hashes(t, data)
	dataBefore := before
	m := boot(append(a.Disks(), key), "migrate")
	var route routeEvent
	m.decode(t, "route", &route)
	if route.From != "7.14.0.3" || route.Want != "8.2.0" || strings.Join(route.Hops, " ") != "8.1.0 8.2.0" || route.Next != "8.1.0" {
		t.Errorf("route %+v: want 7.14.0.3 → 8.1.0 → 8.2.0, this session to 8.1.0", route)
	}
	want := a.Expected
	want.Version = "8.1.0"
	if got := m.healthy(t); !reflect.DeepEqual(got, want) {
		t.Errorf("health report\n got %+v\nwant %+v", got, want)
	}
	var raw struct {
		IndexFormat int `json:"index_format"`
	}
	m.decode(t, "health", &raw)
	if raw.IndexFormat != 3 {
		t.Errorf("health report: index format %d, want 8.1.0's 3", raw.IndexFormat)
	}
	sameHashes(t, "migration through the mirror", before, hashes(t, data))

	// The next boot of the rescue ends the run (the new system's health is
	// journaled at take-up), as a box's next power-on would.
	m = boot(append(a.Disks(), key), "migrate")
	var outcome struct {
		OK     bool
		Health struct{ Version string }
	}
	m.decode(t, "outcome", &outcome)
	if m.event("take_up") == nil || !outcome.OK || outcome.Health.Version != "8.1.0" {
		t.Errorf("the boot after the migration: take-up %v, outcome %+v", m.event("take_up") != nil, outcome)
	}
	// ... and reports it to the fleet, after the health report.
	var sent struct{ State, Version, Error string }
	m.decode(t, "report", &sent)
	b, err := store.Box("box-3")
	if err != nil {
		t.Fatal(err)
	}
	if sent.Error != "" || b.Last == nil || b.Last.State != fleet.StateDone || b.Running == nil || b.Running.Version != "8.1.0" {
		t.Errorf("the fleet's record of box-3: sent %+v, last report %+v", sent, b.Last)
	}
	page, err := http.Get("http://" + lab.addr + fleet.Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), `data-box="box-3"`) || !strings.Contains(string(body), "8.1.0") {
		t.Errorf("the fleet page lacks box-3 on 8.1.0:\n%s", body)
	}

	// The mirror, compromised, serves its old metadata again: validly
	// signed, not expired, older than what this box's key remembers.
	timestamp := filepath.Join(mirrorDir, repo.MetadataDir, "timestamp.json")
	current, err := os.ReadFile(timestamp)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(filepath.Join(oldMetadata, "timestamp.json"))
	if err := os.WriteFile(timestamp, old, 0o644); err != nil {
		t.Fatal(err)
	}
	boxDisks := a.Disks()
	before = hashes(t, boxDisks)
	m = boot(append(boxDisks, key), "migrate")
	msg := strings.Join(m.errors, "\n")
	if !strings.Contains(msg, "older than what this box has seen") {
		t.Errorf("replayed metadata: errors %q, want the rollback refused", msg)
	}
	if m.event("route") != nil || m.event("journal") != nil {
		t.Error("a run began on replayed metadata")
	}
	sameHashes(t, "replayed metadata", before, hashes(t, boxDisks))

	// The mirror is repaired; the box, now on 8.1.0, an install whose
	// state lies over its read-only root, takes the second hop: its
	// configuration and index, read through that overlay, are carried to
	// 8.2.0, whose first boot steps the configuration to format 3.
	if err := os.WriteFile(timestamp, current, 0o644); err != nil {
		t.Fatal(err)
	}
	m = boot(append(a.Disks(), key), "migrate")
	route = routeEvent{}
	m.decode(t, "route", &route)
	if route.From != "8.1.0" || route.Want != "8.2.0" || strings.Join(route.Hops, " ") != "8.2.0" || route.Next != "8.2.0" {
		t.Errorf("route %+v: want 8.1.0 → 8.2.0", route)
	}
	want.Version = "8.2.0"
	if got := m.healthy(t); !reflect.DeepEqual(got, want) {
		t.Errorf("health report after the second hop\n got %+v\nwant %+v", got, want)
	}
	var formats struct {
		IndexFormat  int `json:"index_format"`
		ConfigFormat int `json:"config_format"`
	}
	m.decode(t, "health", &formats)
	if formats.IndexFormat != 3 || formats.ConfigFormat != 3 {
		t.Errorf("health report after the second hop: index format %d, configuration format %d; want 3 and 3", formats.IndexFormat, formats.ConfigFormat)
	}
	sameHashes(t, "the second hop", dataBefore, hashes(t, data))
}
