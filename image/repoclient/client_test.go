package repoclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// box opens the repository as a box whose state is in state, at clock now.
func openBox(v *repotest.Vendor, state string, now time.Time) (*Client, error) {
	return Open(context.Background(), Options{URL: v.Srv.URL, Root: v.Root, State: state, Now: func() time.Time { return now },
		Fetch: fetch.Options{Attempts: 1}})
}

// TestFleetPolicy is the seed's procedure on the repository: a test tag
// for a few boxes, the account default for the others, then the default
// moved, then a version behind a barrier.
func TestFleetPolicy(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0", "8.1.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.Tag("camrec", "stable", "8.0.0"); err != nil {
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
	choose := func(state string, box repo.Box, from string) string {
		t.Helper()
		c, err := openBox(v, state, v.Now)
		if err != nil {
			t.Fatal(err)
		}
		cat, err := c.Catalog("camrec")
		if err != nil {
			t.Fatal(err)
		}
		acct, err := c.Account(box.Account, "camrec")
		if err != nil {
			t.Fatal(err)
		}
		ch, err := repo.Choose(cat, acct, box, c.Reference)
		if err != nil {
			t.Fatal(err)
		}
		hops, err := cat.Route(version.MustParse(from), ch.Version, acct.AllowDowngrade)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, h := range hops {
			s = append(s, h.Version)
		}
		return strings.Join(s, " ")
	}
	box1, box2 := t.TempDir(), t.TempDir()
	if got := choose(box1, repo.Box{Account: "acme", Tag: "test-8.1", Identity: "box-1"}, "8.0.0"); got != "8.1.0" {
		t.Errorf("box 1 with the test tag: route %q, want 8.1.0", got)
	}
	if got := choose(box2, repo.Box{Account: "acme", Identity: "box-2"}, "8.0.0"); got != "" {
		t.Errorf("box 2 on the default: route %q, want none", got)
	}
	v.Now = v.Now.Add(time.Hour)
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	if got := choose(box2, repo.Box{Account: "acme", Identity: "box-2"}, "8.0.0"); got != "8.1.0" {
		t.Errorf("box 2 after the default moved: route %q, want 8.1.0", got)
	}
	v.Now = v.Now.Add(time.Hour)
	v.Publish("8.2.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier = true }); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	if got := choose(t.TempDir(), repo.Box{Account: "acme", Identity: "box-3"}, "8.0.0"); got != "8.1.0 8.2.0" {
		t.Errorf("box 3 at 8.0.0 behind the barrier: route %q, want 8.1.0 8.2.0", got)
	}

	// A rollout phases 8.2.0 in from 8.1.0: signed (as integers: TUF's
	// canonical JSON has no floating-point numbers), read, followed.
	v.Now = v.Now.Add(time.Hour)
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	v.Edit(func(r *editor.Repo) error {
		return r.SetDefault("acme", "camrec", "8.2.0", &editor.RolloutSpec{StartFraction: 0.25, Duration: 10 * time.Hour, HaltFailures: 3})
	})
	c, err := openBox(v, t.TempDir(), v.Now)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := c.Account("acme", "camrec")
	if err != nil || acct.Rollout == nil || acct.Rollout.StartPermille != 250 || acct.Rollout.Previous != "8.1.0" || acct.Rollout.HaltFailures != 3 {
		t.Fatalf("the rollout a box reads: %+v, %v", acct.Rollout, err)
	}
	cat, _ := c.Catalog("camrec")
	took := 0
	for i := 0; i < 400; i++ {
		ch, err := repo.Choose(cat, acct, repo.Box{Account: "acme", Identity: fmt.Sprintf("box-%d", i)}, c.Reference)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Version == "8.2.0" {
			took++
		}
	}
	if took < 60 || took > 140 {
		t.Errorf("at the rollout's start %d of 400 boxes take 8.2.0, want about 100", took)
	}

	// A target comes down whole, checked; an altered one does not.
	c, err = openBox(v, box1, v.Now)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "manifest.json")
	if _, err := c.Download(context.Background(), repo.ManifestTarget("camrec", "8.2.0"), dst, fetch.Options{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(v.Rels["8.2.0"], release.ManifestFile))
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Error("the manifest downloaded differs from the one published")
	}
	tf, _ := c.Target(repo.ReleaseTarget("camrec", "8.2.0", "root.img.zst"))
	if tf == nil {
		t.Fatalf("no target for the artifact; targets: %v", c.up.GetTopLevelTargets())
	}
	stored := editor.StoredPath(v.Dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
	data, _ := os.ReadFile(stored)
	data[len(data)/2] ^= 1
	os.WriteFile(stored, data, 0o644)
	dst = filepath.Join(t.TempDir(), "root.img.zst")
	if _, err := c.Download(context.Background(), tf.Path, dst, fetch.Options{Attempts: 1}); !errors.Is(err, ErrHash) {
		t.Errorf("an altered artifact: %v, want ErrHash", err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("an altered artifact was kept")
	}
}

// TestRefusals: each attack TUF is for, refused by name.
func TestRefusals(t *testing.T) {
	t.Run("replayed old metadata", func(t *testing.T) {
		v := repotest.New(t)
		v.Publish("8.0.0")
		old := t.TempDir()
		os.CopyFS(old, os.DirFS(filepath.Join(v.Dir, repo.MetadataDir)))
		v.Edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
		state := t.TempDir()
		if _, err := openBox(v, state, v.Now); err != nil {
			t.Fatal(err)
		}
		// A compromised mirror serves the metadata of before: validly
		// signed, not expired, older than what the box has seen.
		os.CopyFS(filepath.Join(v.Dir, repo.MetadataDir+".new"), os.DirFS(filepath.Join(v.Dir, repo.MetadataDir)))
		for _, f := range []string{"timestamp.json"} {
			data, _ := os.ReadFile(filepath.Join(old, f))
			os.WriteFile(filepath.Join(v.Dir, repo.MetadataDir, f), data, 0o644)
		}
		before := repotest.Tree(t, state)
		if _, err := openBox(v, state, v.Now); !errors.Is(err, ErrRollback) {
			t.Errorf("replayed timestamp: %v, want ErrRollback", err)
		}
		if repotest.Tree(t, state) != before {
			t.Error("a refused refresh changed what the box remembers")
		}
		// A box that never saw the newer metadata takes the old one: only
		// what a box remembers protects it.
		if _, err := openBox(v, t.TempDir(), v.Now); err != nil {
			t.Errorf("a fresh box on the old metadata: %v", err)
		}
	})
	t.Run("expired timestamp", func(t *testing.T) {
		v := repotest.New(t)
		v.Publish("8.0.0")
		if _, err := openBox(v, t.TempDir(), v.Now.Add(8*24*time.Hour)); !errors.Is(err, ErrExpired) {
			t.Errorf("8 days after a 7-day timestamp: %v, want ErrExpired", err)
		}
	})
	t.Run("frozen mirror and a box without a clock", func(t *testing.T) {
		v := repotest.New(t)
		v.Publish("8.0.0")
		frozen := t.TempDir()
		os.CopyFS(frozen, os.DirFS(filepath.Join(v.Dir, repo.MetadataDir)))
		v.Now = v.Now.Add(10 * 24 * time.Hour)
		v.Edit(func(r *editor.Repo) error { return nil }) // the vendor's refresh
		state := t.TempDir()
		epoch := time.Unix(0, 0)
		c, err := openBox(v, state, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Issued.Equal(v.Now) {
			t.Errorf("issued %v, want %v", c.Issued, v.Now)
		}
		// The mirror now freezes on the metadata of 10 days ago; the box's
		// clock says 1970. The newest timestamp it saw says otherwise.
		os.RemoveAll(filepath.Join(v.Dir, repo.MetadataDir))
		os.CopyFS(filepath.Join(v.Dir, repo.MetadataDir), os.DirFS(frozen))
		os.RemoveAll(filepath.Join(state, "metadata")) // even without the metadata it kept
		if _, err := openBox(v, state, epoch); !errors.Is(err, ErrExpired) {
			t.Errorf("frozen metadata, clock at 1970: %v, want ErrExpired", err)
		}
		// So does the rescue image's own build time.
		_, err = Open(context.Background(), Options{URL: v.Srv.URL, Root: v.Root, State: t.TempDir(), Floor: v.Now, Now: func() time.Time { return epoch }, Fetch: fetch.Options{Attempts: 1}})
		if !errors.Is(err, ErrExpired) {
			t.Errorf("frozen metadata, floor after its expiry: %v, want ErrExpired", err)
		}
	})
	t.Run("signed by a key the root does not list", func(t *testing.T) {
		v := repotest.New(t)
		v.Publish("8.0.0")
		// The thief of the old timestamp key keeps signing after the
		// vendor rotated it.
		thief := t.TempDir()
		os.CopyFS(thief, os.DirFS(v.Keys))
		v.Edit(func(r *editor.Repo) error { return r.RotateKey("timestamp") })
		if _, err := openBox(v, t.TempDir(), v.Now); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
		good := repotest.Tree(t, v.Dir)
		v.Now = v.Now.Add(time.Minute)
		r, err := editor.Open(v.Dir, thief, v.Opts())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(); err == nil {
			t.Fatal("the old timestamp key signed a repository whose root no longer lists it")
		}
		_ = good
		// Forge it by hand: the thief's key signs a timestamp.
		forgeTimestamp(t, v, thief)
		if _, err := openBox(v, t.TempDir(), v.Now); !errors.Is(err, ErrSignature) {
			t.Errorf("timestamp signed by a retired key: %v, want ErrSignature", err)
		}
	})
}

// forgeTimestamp signs a new timestamp with the timestamp key in keys.
func forgeTimestamp(t *testing.T, v *repotest.Vendor, keys string) {
	t.Helper()
	forgeTimestampWith(t, v, keys, nil)
}

// forgeTimestampWith signs a new timestamp, changed by edit, with the
// timestamp key in keys.
func forgeTimestampWith(t *testing.T, v *repotest.Vendor, keys string, edit func(*metadata.TimestampType)) {
	t.Helper()
	data, _ := os.ReadFile(filepath.Join(keys, "timestamp.pem"))
	b, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.LoadSigner(k, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json")
	ts, err := metadata.Timestamp().FromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
	if edit != nil {
		edit(&ts.Signed)
	}
	ts.ClearSignatures()
	if _, err := ts.Sign(signer); err != nil {
		t.Fatal(err)
	}
	if err := ts.ToFile(p, true); err != nil {
		t.Fatal(err)
	}
}

// TestRotation: a box that carries the first root follows the chain of
// roots the vendor signed, each by the keys of the one before.
func TestRotation(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	state := t.TempDir()
	if _, err := openBox(v, state, v.Now); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp", "root"} {
		v.Now = v.Now.Add(time.Hour)
		v.Edit(func(r *editor.Repo) error { return r.RotateKey(role) })
	}
	v.Edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
	for _, s := range []string{state, t.TempDir()} {
		c, err := openBox(v, s, v.Now)
		if err != nil {
			t.Fatalf("after rotating every key: %v", err)
		}
		if got := c.up.GetTrustedMetadataSet().Root.Signed.Version; got != 6 {
			t.Errorf("root version %d, want 6", got)
		}
		cat, _ := c.Catalog("camrec")
		if cat.Tags.Tags["stable"] != "8.0.0" {
			t.Errorf("tags after rotation: %v", cat.Tags)
		}
	}
	retired, _ := filepath.Glob(filepath.Join(v.Keys, "*.retired-*.pem"))
	if len(retired) != 5 {
		t.Errorf("%d retired keys kept, want 5", len(retired))
	}
	// The root cannot be rotated without its key.
	os.Remove(filepath.Join(v.Keys, "root.pem"))
	before := repotest.Tree(t, v.Dir)
	if err := v.Try(func(r *editor.Repo) error { return r.RotateKey("root") }); !errors.Is(err, editor.ErrNoKey) {
		t.Errorf("rotating the root without its key: %v, want ErrNoKey", err)
	}
	if repotest.Tree(t, v.Dir) != before {
		t.Error("a refused rotation wrote")
	}
}

// TestEditorRefusals: what would break the repository is refused, and
// nothing is written.
func TestEditorRefusals(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0", "8.1.0", "8.2.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	for _, tc := range []struct {
		name   string
		change func(r *editor.Repo) error
		err    error
	}{
		{"a tag to a version not published", func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.3.0") }, repo.ErrUnpublished},
		{"a default not published", func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "9.0.0", nil) }, repo.ErrUnpublished},
		{"a test tag not published", func(r *editor.Repo) error { return r.SetAccountTag("acme", "camrec", "test-9", "9.0.0") }, repo.ErrUnpublished},
		{"a bad tag name", func(r *editor.Repo) error { return r.Tag("camrec", "Stable", "8.0.0") }, repo.ErrBadTagName},
		{"an account of another", func(r *editor.Repo) error { return r.SetDefault("globex", "camrec", "8.0.0", nil) }, repo.ErrUnknown},
		{"an account twice", func(r *editor.Repo) error { return r.AddAccount("acme") }, editor.ErrExists},
		{"a dead end on the way to the default", func(r *editor.Repo) error {
			return r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier, p.DeadEnd = true, true })
		}, repo.ErrDeadEnd},
		{"a barrier on a version not published", func(r *editor.Repo) error {
			return r.SetRelease("camrec", "8.1.5", func(p *repo.Release) { p.Barrier = true })
		}, repo.ErrUnpublished},
		{"a version published again with other bytes", func(r *editor.Repo) error {
			dir := v.ReleaseOf("8.1.0", "rebuilt")
			_, err := r.Publish(dir, v.PK)
			return err
		}, editor.ErrConflict},
		{"a release signed by another key", func(r *editor.Repo) error {
			other := repotest.New(t)
			_, err := r.Publish(other.Release("8.3.0"), v.PK)
			return err
		}, sign.ErrBadSignature},
		{"a rollout with nothing to phase from", func(r *editor.Repo) error {
			return r.SetDefault("acme", "camrec", "8.2.0", &editor.RolloutSpec{StartFraction: 0.1, Duration: time.Hour})
		}, nil},
	} {
		before, keys := repotest.Tree(t, v.Dir), repotest.Tree(t, v.Keys)
		err := v.Try(tc.change)
		if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		if repotest.Tree(t, v.Dir) != before || repotest.Tree(t, v.Keys) != keys {
			t.Errorf("%s: refused, but the repository or its keys changed", tc.name)
		}
	}
}

// TestStolenTimestampKey: the thief of a timestamp key the vendor has since
// rotated out can neither take a box back to the root that trusted it, by
// withholding the newer root, nor freeze the box with a time far ahead.
func TestStolenTimestampKey(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	thief := t.TempDir()
	os.CopyFS(thief, os.DirFS(v.Keys))
	state := t.TempDir()
	if _, err := openBox(v, state, v.Now); err != nil {
		t.Fatal(err)
	}
	// The thief signs a timestamp saying 2099; the box takes it as a
	// floor of the time.
	forgeTimestampWith(t, v, thief, func(ts *metadata.TimestampType) {
		ts.Expires = time.Date(2099, 1, 8, 0, 0, 0, 0, time.UTC)
		ts.UnrecognizedFields[repo.IssuedField] = "2099-01-01T00:00:00Z"
	})
	if c, err := openBox(v, state, v.Now); err != nil || c.Issued.Year() != 2099 {
		t.Fatalf("the forged timestamp: %v (issued %v)", err, c)
	}
	// The vendor finds out and rotates the timestamp key.
	v.Now = v.Now.Add(time.Hour)
	v.Edit(func(r *editor.Repo) error { return r.RotateKey("timestamp") })
	if _, err := openBox(v, state, v.Now); err != nil {
		t.Fatalf("after the rotation, the box is still frozen by the thief's time: %v", err)
	}
	// The thief, as a mirror, withholds the new root and serves a
	// timestamp signed by the old key: the box remembers root 2.
	os.Remove(filepath.Join(v.Dir, repo.MetadataDir, "2.root.json"))
	forgeTimestamp(t, v, thief)
	if _, err := openBox(v, state, v.Now); !errors.Is(err, ErrSignature) {
		t.Errorf("root withheld, timestamp by the revoked key: %v, want ErrSignature", err)
	}
}

func TestSafePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"camrec/8.1.0/manifest.json": true, "accounts/acme/camrec.json": true,
		"camrec/8.1.0/../../../../etc/x.conf": false, "/etc/passwd": false, "camrec//x": false,
		"camrec/./x": false, "": false, "camrec/.hidden": false, "camrec/x y": false,
	} {
		if err := SafePath(p); (err == nil) != ok {
			t.Errorf("%q: %v", p, err)
		}
	}
}

// TestRefreshKeepsItValid: a repository refreshed from cron stays valid for
// years: each role is signed again before it expires, the root and the
// targets (a year each) included.
func TestRefreshKeepsItValid(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	for day := 0; day < 3*365; day += 5 {
		v.Now = v.Now.Add(5 * 24 * time.Hour)
		v.Edit(func(r *editor.Repo) error { return nil }) // passeur repo refresh
	}
	if _, err := openBox(v, t.TempDir(), v.Now); err != nil {
		t.Errorf("three years of refreshes later: %v", err)
	}
}

// TestEditorRefusesATamperedFolder: someone with write access to the served
// folder edits the targets; the vendor's next command refuses to sign it.
func TestEditorRefusesATamperedFolder(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	v.Edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
	names, _ := filepath.Glob(filepath.Join(v.Dir, repo.MetadataDir, "*.targets.json"))
	sort.Strings(names)
	p := names[len(names)-1]
	data, _ := os.ReadFile(p)
	tampered := regexp.MustCompile(`"length": ([0-9])`).ReplaceAll(data, []byte(`"length": 9$1`)) // every length, longer
	if bytes.Equal(tampered, data) {
		t.Fatal("nothing tampered")
	}
	os.WriteFile(p, tampered, 0o644)
	if err := v.Try(func(r *editor.Repo) error { return nil }); !errors.Is(err, editor.ErrTampered) {
		t.Errorf("a targets file edited in the folder: %v, want ErrTampered", err)
	}
	os.WriteFile(p, data, 0o644)
	if err := v.Try(func(r *editor.Repo) error { return nil }); err != nil {
		t.Errorf("the folder put back: %v", err)
	}
	// A first root replaced by one the keys folder does not pin.
	other := repotest.New(t)
	root, _ := os.ReadFile(filepath.Join(other.Dir, repo.MetadataDir, "1.root.json"))
	os.WriteFile(filepath.Join(v.Dir, repo.MetadataDir, "1.root.json"), root, 0o644)
	if err := v.Try(func(r *editor.Repo) error { return nil }); !errors.Is(err, editor.ErrTampered) {
		t.Errorf("another first root: %v, want ErrTampered", err)
	}
}

// TestRotationCutShort: a rotation whose commit fails after the new root
// is written leaves a keys folder and a repository the next command takes
// up: the new key is found beside the old, the vendor is not locked out.
func TestRotationCutShort(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	ts := filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json")
	os.MkdirAll(filepath.Join(ts+".tmp", "in-the-way"), 0o755) // the new timestamp cannot be written
	if err := v.Try(func(r *editor.Repo) error { return r.RotateKey("timestamp") }); err == nil {
		t.Fatal("the commit went through a timestamp it could not write")
	}
	os.RemoveAll(ts + ".tmp")
	if _, err := os.Stat(filepath.Join(v.Keys, "timestamp.pem.new")); err != nil {
		t.Fatalf("the new key: %v", err)
	}
	v.Now = v.Now.Add(time.Minute)
	if err := v.Try(func(r *editor.Repo) error { return nil }); err != nil {
		t.Fatalf("the refresh after the cut: %v", err)
	}
	if _, err := openBox(v, t.TempDir(), v.Now); err != nil {
		t.Errorf("a box after the refresh: %v", err)
	}
}

// TestSeenIsSigned: the time a box remembers is the newest timestamp it
// verified, as signed. One made up on a disk (a far future time, the
// signature left as it was) gives no floor, where it would have frozen
// the box; a newer genuine one found elsewhere (another disk, Fold) raises
// the floor and becomes what the box remembers.
func TestSeenIsSigned(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	state := t.TempDir()
	c, err := openBox(v, state, v.Now)
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(state, SeenFile))
	if err != nil || !c.Issued.Equal(v.Now) {
		t.Fatalf("seen %v, issued %v; want %v", err, c.Issued, v.Now)
	}
	if _, err := metadata.Timestamp().FromBytes(first); err != nil {
		t.Fatalf("what the box remembers is not a timestamp: %v", err)
	}

	// A forged time: two years ahead, the expiry after it.
	var doc map[string]any
	json.Unmarshal(first, &doc)
	signed := doc["signed"].(map[string]any)
	ahead := v.Now.Add(2 * 365 * 24 * time.Hour)
	signed[repo.IssuedField] = ahead.Format(time.RFC3339)
	signed["expires"] = ahead.Add(24 * time.Hour).Format(time.RFC3339)
	forged, _ := json.Marshal(doc)
	os.WriteFile(filepath.Join(state, SeenFile), forged, 0o644)
	c, err = openBox(v, state, v.Now)
	if err != nil || !c.Reference.Equal(v.Now) {
		t.Errorf("a forged seen time: %v, reference %v; want no floor from it (%v)", err, c.Reference, v.Now)
	}

	// The vendor refreshes 10 days later; another disk of the box
	// remembers that timestamp, the box's own the first one.
	v.Now = v.Now.Add(10 * 24 * time.Hour)
	v.Edit(func(r *editor.Repo) error { return nil })
	other := t.TempDir()
	if _, err := openBox(v, other, v.Now); err != nil {
		t.Fatal(err)
	}
	newer, _ := os.ReadFile(filepath.Join(other, SeenFile))
	os.WriteFile(filepath.Join(state, SeenFile), first, 0o644)
	for name, data := range map[string][]byte{"a": newer, "b": forged} {
		os.MkdirAll(filepath.Join(state, Elsewhere, name), 0o755)
		os.WriteFile(filepath.Join(state, Elsewhere, name, SeenFile), data, 0o644)
	}
	if _, err := Fold(v.Root, state); err != nil {
		t.Fatal(err)
	}
	// The clock says 1970 and the mirror serves what it did then.
	c, err = openBox(v, state, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Reference.Equal(v.Now) {
		t.Errorf("reference %v, want the newer genuine timestamp's %v", c.Reference, v.Now)
	}
	if got, _ := os.ReadFile(filepath.Join(state, SeenFile)); !bytes.Equal(got, newer) {
		t.Error("the newer genuine timestamp did not become what the box remembers")
	}
	if _, err := os.Stat(filepath.Join(state, Elsewhere)); err == nil {
		t.Error("the folders from elsewhere were left")
	}
}
