package mirror

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/image/repo/tufjs"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/version"
)

// fleet is the seed's vendor repository: camrec 8.0.0 to 8.2.0 published,
// account acme on 8.0.0 with its test tag test-8.1 on 8.1.0, and the
// rescue image of qemu-x86_64.
func fleet(t *testing.T) *repotest.Vendor {
	v := repotest.New(t)
	v.Now = time.Now().UTC() // tuf-js reads the real clock
	v.Publish("8.0.0", "8.1.0", "8.2.0")
	rescue := t.TempDir()
	for _, name := range repo.RescueFiles {
		os.WriteFile(filepath.Join(rescue, name), []byte(name+" of qemu-x86_64"), 0o644)
	}
	v.Edit(func(r *editor.Repo) error {
		if err := r.PublishRescue("qemu-x86_64", rescue); err != nil {
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
	return v
}

func sync(t *testing.T, v *repotest.Vendor, dir string, hook func()) (*Result, error) {
	t.Helper()
	return Sync(context.Background(), Options{Upstream: v.Srv.URL, Root: v.Root, Account: "acme", Tag: "test-8.1", Dir: dir,
		Fetch: fetch.Options{Attempts: 1}, BeforeSwitch: hook})
}

// box reads the mirror as a box of acme: the default it is given, and
// whether the mirror holds its files.
func box(t *testing.T, url string, root []byte, state string) (def string, held func(ver string) bool) {
	t.Helper()
	c, err := repoclient.Open(context.Background(), repoclient.Options{URL: url, Root: root, State: state, Fetch: fetch.Options{Attempts: 1}})
	if err != nil {
		t.Fatalf("a box reading the mirror: %v", err)
	}
	a, err := c.Account("acme", "camrec")
	if err != nil {
		t.Fatal(err)
	}
	return a.Default, func(ver string) bool {
		_, err := c.Download(context.Background(), repo.ManifestTarget("camrec", ver), filepath.Join(t.TempDir(), "m"), fetch.Options{Attempts: 1})
		return err == nil
	}
}

// TestSync: the mirror holds what its account's boxes may be sent to and
// nothing else, is served like a repository (passeur's client and tuf-js
// read it), and switches to a new state atomically.
func TestSync(t *testing.T) {
	v := fleet(t)
	dir := filepath.Join(t.TempDir(), "mirror")
	res, err := sync(t, v, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Record.Versions, " "); got != "8.0.0 8.1.0" || res.Record.Default != "8.0.0" {
		t.Errorf("the mirror holds %q (default %s), want 8.0.0 8.1.0 (default 8.0.0)", got, res.Record.Default)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	def, held := box(t, srv.URL, v.Root, t.TempDir())
	if def != "8.0.0" || !held("8.0.0") || !held("8.1.0") || held("8.2.0") {
		t.Errorf("a box reads default %s; 8.0.0 held %v, 8.1.0 %v, 8.2.0 %v; want 8.0.0, true, true, false", def, held("8.0.0"), held("8.1.0"), held("8.2.0"))
	}
	// A box staging from its running system finds its board's rescue.
	c, err := repoclient.Open(context.Background(), repoclient.Options{URL: srv.URL, Root: v.Root, State: t.TempDir(), Fetch: fetch.Options{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if _, err := c.Download(context.Background(), repo.RescueTarget("qemu-x86_64", "vmlinuz"), kernel, fetch.Options{Attempts: 1}); err != nil {
		t.Errorf("the rescue image from the mirror: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ParseRecord(data); err != nil || !r.Holds("8.1.0") || r.Holds("8.2.0") {
		t.Errorf("mirror.json: %+v, %v", r, err)
	}

	// tuf-js, which shares no code with passeur, takes the mirror too.
	js := tufjs.ForTest(t)
	jr, err := tufjs.Refresh(context.Background(), tufjs.Options{Dir: js, MetadataURL: srv.URL + "/metadata", TargetsURL: srv.URL + "/targets",
		TrustedRoot: v.Root, CacheDir: t.TempDir(), Target: repo.ManifestTarget("camrec", "8.1.0")})
	if err != nil || !jr.OK {
		t.Errorf("tuf-js on the mirror: %v, %v", jr, err)
	}

	// The default moves: a box reading the mirror while it syncs sees the
	// old state, whole; after, the new.
	v.Now = v.Now.Add(time.Minute)
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	var during string
	res, err = sync(t, v, dir, func() {
		def, held := box(t, srv.URL, v.Root, t.TempDir())
		if !held(def) {
			t.Errorf("during the sync, the default %s a box reads is not held", def)
		}
		during = def
	})
	if err != nil {
		t.Fatal(err)
	}
	if during != "8.0.0" {
		t.Errorf("during the sync a box read default %s, want the old state's 8.0.0", during)
	}
	if def, _ := box(t, srv.URL, v.Root, t.TempDir()); def != "8.1.0" {
		t.Errorf("after the sync a box reads default %s, want 8.1.0", def)
	}
	tf0 := v.Target(repo.ManifestTarget("camrec", "8.0.0"))
	if _, err := os.Stat(filepath.Join(dir, repo.TargetsDir, "camrec/8.0.0", hex.EncodeToString(tf0.Hashes["sha256"])+".manifest.json")); err != nil {
		t.Errorf("8.0.0, served by the state before, was removed at once: %v", err)
	}
	if res.Kept == 0 || res.Files != 1 { // 8.0.0 and 8.1.0 were there; the new policy file is not
		t.Errorf("second sync: %d files downloaded, %d kept; want 1 (the account's policy) and the rest kept", res.Files, res.Kept)
	}

	// A barrier: the mirror holds every version a route to the default
	// passes through.
	v.Now = v.Now.Add(time.Minute)
	v.Edit(func(r *editor.Repo) error {
		if err := r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier = true }); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	if res, err = sync(t, v, dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Record.Versions, " "); got != "8.1.0 8.2.0" {
		t.Errorf("behind a barrier the mirror holds %q, want 8.1.0 8.2.0", got)
	}
	// 8.0.0 was served by the state before the last: its files are gone
	// now, 8.1.0's stay, and so does every root.
	tf := v.Target(repo.ManifestTarget("camrec", "8.0.0"))
	old := filepath.Join(dir, repo.TargetsDir, "camrec/8.0.0", hex.EncodeToString(tf.Hashes["sha256"])+".manifest.json")
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) || res.Removed == 0 {
		t.Errorf("8.0.0's manifest after two syncs without it: %v (%d files removed)", err, res.Removed)
	}
	if def, held := box(t, srv.URL, v.Root, t.TempDir()); def != "8.2.0" || !held("8.1.0") || !held("8.2.0") {
		t.Errorf("after pruning a box reads default %s, 8.1.0 held %v, 8.2.0 %v", def, held("8.1.0"), held("8.2.0"))
	}
	if _, err := os.Stat(filepath.Join(dir, repo.MetadataDir, "1.root.json")); err != nil {
		t.Errorf("the first root: %v", err)
	}
}

// TestSyncRefusals: the mirror is a TUF client first: upstream metadata
// older than it has seen, or a target that is not what was signed, leaves
// the mirror serving its previous state, byte for byte.
func TestSyncRefusals(t *testing.T) {
	v := fleet(t)
	dir := filepath.Join(t.TempDir(), "mirror")
	old := t.TempDir()
	os.CopyFS(old, os.DirFS(filepath.Join(v.Dir, repo.MetadataDir)))
	v.Now = v.Now.Add(time.Minute)
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	if _, err := sync(t, v, dir, nil); err != nil {
		t.Fatal(err)
	}
	before := repotest.Tree(t, dir)

	// A compromised upstream (or a man in the middle) replays the
	// metadata of before.
	data, _ := os.ReadFile(filepath.Join(old, "timestamp.json"))
	good, _ := os.ReadFile(filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json"))
	os.WriteFile(filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json"), data, 0o644)
	if _, err := sync(t, v, dir, nil); !errors.Is(err, repoclient.ErrRollback) {
		t.Errorf("replayed upstream: %v, want ErrRollback", err)
	}
	if repotest.Tree(t, dir) != before {
		t.Error("a refused sync changed the mirror")
	}
	os.WriteFile(filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json"), good, 0o644)

	// A new release whose artifact upstream serves altered: the sync
	// stops, the mirror still serves its last state.
	v.Now = v.Now.Add(time.Minute)
	v.Publish("8.3.0")
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.3.0", nil) })
	tf := v.Target(repo.ReleaseTarget("camrec", "8.3.0", "root.img.zst"))
	p := editor.StoredPath(v.Dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
	orig, _ := os.ReadFile(p)
	bad := slices.Clone(orig)
	bad[len(bad)/2] ^= 1
	os.WriteFile(p, bad, 0o644)
	if _, err := sync(t, v, dir, nil); !errors.Is(err, repoclient.ErrHash) {
		t.Errorf("altered artifact upstream: %v, want ErrHash", err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	if def, held := box(t, srv.URL, v.Root, t.TempDir()); def != "8.1.0" || !held("8.1.0") {
		t.Errorf("after a failed sync a box reads default %s (held %v), want the last state's 8.1.0", def, held(def))
	}
	// Upstream repaired, the sync goes on from what it had.
	os.WriteFile(p, orig, 0o644)
	res, err := Sync(context.Background(), Options{Upstream: v.Srv.URL, Root: v.Root, Account: "acme", Dir: dir, Fetch: fetch.Options{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Record.Default != "8.3.0" || !res.Record.Holds("8.3.0") || res.Kept == 0 {
		t.Errorf("repaired sync: %+v", res)
	}
}

// TestClosure: the mirror holds every version a box may need on its way to
// a named one, a box older than every published version included (the
// seed's 7.12, which must pass 7.14.0.3 before 8).
func TestClosure(t *testing.T) {
	cat := &repo.Catalog{Product: "camrec"}
	cat.Add(version.MustParse("7.14.0.3"), repo.Release{Barrier: true})
	cat.Add(version.MustParse("8.0.0"), repo.Release{})
	cat.Add(version.MustParse("8.1.0"), repo.Release{Barrier: true})
	cat.Add(version.MustParse("8.2.0"), repo.Release{})
	got, err := closure(cat, []string{"8.2.0"})
	if err != nil || strings.Join(got, " ") != "7.14.0.3 8.1.0 8.2.0" {
		t.Errorf("closure of 8.2.0: %v, %v; want 7.14.0.3 8.1.0 8.2.0", got, err)
	}
	if _, err := closure(cat, []string{"9.0.0"}); !errors.Is(err, repo.ErrUnpublished) {
		t.Errorf("closure of an unpublished version: %v", err)
	}
}
