package repoclient

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/image/fetch"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// vendor is a repository being edited, served over loopback, with the
// minisign key its releases are signed with.
type vendor struct {
	t          *testing.T
	dir, keys  string
	sk         minisign.PrivateKey
	pk         minisign.PublicKey
	now        time.Time
	srv        *httptest.Server
	root       []byte // the first root, as a rescue image carries it
	rels       map[string]string
	timestampD time.Duration
}

func newVendor(t *testing.T) *vendor {
	t.Helper()
	pub, priv, err := sign.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	kd := t.TempDir()
	os.WriteFile(filepath.Join(kd, "k.key"), priv, 0o600)
	os.WriteFile(filepath.Join(kd, "k.pub"), pub, 0o644)
	sk, _ := sign.LoadPrivateKey(filepath.Join(kd, "k.key"), "")
	pk, _ := sign.LoadPublicKey(filepath.Join(kd, "k.pub"))
	v := &vendor{t: t, dir: t.TempDir(), keys: t.TempDir(), sk: sk, pk: pk, rels: map[string]string{},
		now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	r, err := editor.Init(v.dir, v.keys, v.opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	v.root, err = os.ReadFile(filepath.Join(v.dir, repo.MetadataDir, "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	v.srv = httptest.NewServer(http.FileServer(http.Dir(v.dir)))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) opts() editor.Options {
	return editor.Options{Now: func() time.Time { return v.now }, Timestamp: v.timestampD}
}

// edit opens the repository, changes it and commits, failing the test on
// any error.
func (v *vendor) edit(change func(r *editor.Repo) error) {
	v.t.Helper()
	if err := v.try(change); err != nil {
		v.t.Fatal(err)
	}
}

func (v *vendor) try(change func(r *editor.Repo) error) error {
	r, err := editor.Open(v.dir, v.keys, v.opts())
	if err != nil {
		return err
	}
	if err := change(r); err != nil {
		return err
	}
	return r.Commit()
}

// release makes a small signed release of camrec at ver.
func (v *vendor) release(ver string) string { return v.releaseOf(ver, ver) }

// releaseOf makes a release whose root artifact repeats content.
func (v *vendor) releaseOf(ver, content string) string {
	t := v.t
	t.Helper()
	dir := t.TempDir()
	a, err := release.WriteArtifact(dir, "root", bytes.NewReader(bytes.Repeat([]byte(content), 50000)))
	if err != nil {
		t.Fatal(err)
	}
	size, _ := release.ParseSize("64MiB")
	m := release.Manifest{Format: 1, Product: "camrec", Version: version.MustParse(ver), Arch: "amd64",
		Layout:    release.Layout{Table: "gpt", Partitions: []release.Partition{{Name: "root", Type: "root-x86-64", Size: size, Role: "artifact", Artifact: "root"}}},
		Artifacts: []release.Artifact{a},
		Recognize: release.Recognize{VersionFile: "/etc/camrec/version", VersionRegexp: `^camrec (\S+)`},
		Config:    []string{"/etc/camrec"}, MinMediaFree: 1 << 20}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, release.ManifestFile), data, 0o644)
	os.WriteFile(filepath.Join(dir, release.ManifestFile+sign.Ext), sign.Sign(v.sk, data, "test"), 0o644)
	v.rels[ver] = dir
	return dir
}

func (v *vendor) publish(vers ...string) {
	v.t.Helper()
	v.edit(func(r *editor.Repo) error {
		for _, ver := range vers {
			if _, err := r.Publish(v.release(ver), v.pk); err != nil {
				return err
			}
		}
		return nil
	})
}

// target is a target's signed length and hashes, as the vendor wrote them.
func (v *vendor) target(p string) *metadata.TargetFiles {
	v.t.Helper()
	r, err := editor.Open(v.dir, v.keys, v.opts())
	if err != nil {
		v.t.Fatal(err)
	}
	for _, role := range append([]string{"targets"}, "account-acme") {
		if t := r.Targets(role); t != nil && t.Targets[p] != nil {
			return t.Targets[p]
		}
	}
	v.t.Fatalf("no target %s", p)
	return nil
}

func (v *vendor) fetchOptions() fetch.Options { return fetch.Options{Attempts: 1} }

// box opens the repository as a box whose state is in state, at clock now.
func (v *vendor) box(state string, now time.Time) (*Client, error) {
	return Open(context.Background(), Options{URL: v.srv.URL, Root: v.root, State: state, Now: func() time.Time { return now },
		Fetch: fetch.Options{Attempts: 1}})
}

// hashTree hashes every file under dir: proof that a refusal wrote nothing.
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var names []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		data, _ := os.ReadFile(n)
		fmt.Fprintf(h, "%s %x\n", strings.TrimPrefix(n, dir), sha256.Sum256(data))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestFleetPolicy is the seed's procedure on the repository: a test tag
// for a few boxes, the account default for the others, then the default
// moved, then a version behind a barrier.
func TestFleetPolicy(t *testing.T) {
	v := newVendor(t)
	v.publish("8.0.0", "8.1.0")
	v.edit(func(r *editor.Repo) error {
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
		c, err := v.box(state, v.now)
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
	v.now = v.now.Add(time.Hour)
	v.edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	if got := choose(box2, repo.Box{Account: "acme", Identity: "box-2"}, "8.0.0"); got != "8.1.0" {
		t.Errorf("box 2 after the default moved: route %q, want 8.1.0", got)
	}
	v.now = v.now.Add(time.Hour)
	v.publish("8.2.0")
	v.edit(func(r *editor.Repo) error {
		if err := r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier = true }); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	if got := choose(t.TempDir(), repo.Box{Account: "acme", Identity: "box-3"}, "8.0.0"); got != "8.1.0 8.2.0" {
		t.Errorf("box 3 at 8.0.0 behind the barrier: route %q, want 8.1.0 8.2.0", got)
	}

	// A target comes down whole, checked; an altered one does not.
	c, err := v.box(box1, v.now)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "manifest.json")
	if _, err := c.Download(context.Background(), repo.ManifestTarget("camrec", "8.2.0"), dst, fetch.Options{Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(v.rels["8.2.0"], release.ManifestFile))
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Error("the manifest downloaded differs from the one published")
	}
	tf, _ := c.Target(repo.ReleaseTarget("camrec", "8.2.0", "root.img.zst"))
	if tf == nil {
		t.Fatalf("no target for the artifact; targets: %v", c.up.GetTopLevelTargets())
	}
	stored := editor.StoredPath(v.dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
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
		v := newVendor(t)
		v.publish("8.0.0")
		old := t.TempDir()
		os.CopyFS(old, os.DirFS(filepath.Join(v.dir, repo.MetadataDir)))
		v.edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
		state := t.TempDir()
		if _, err := v.box(state, v.now); err != nil {
			t.Fatal(err)
		}
		// A compromised mirror serves the metadata of before: validly
		// signed, not expired, older than what the box has seen.
		os.CopyFS(filepath.Join(v.dir, repo.MetadataDir+".new"), os.DirFS(filepath.Join(v.dir, repo.MetadataDir)))
		for _, f := range []string{"timestamp.json"} {
			data, _ := os.ReadFile(filepath.Join(old, f))
			os.WriteFile(filepath.Join(v.dir, repo.MetadataDir, f), data, 0o644)
		}
		before := hashTree(t, state)
		if _, err := v.box(state, v.now); !errors.Is(err, ErrRollback) {
			t.Errorf("replayed timestamp: %v, want ErrRollback", err)
		}
		if hashTree(t, state) != before {
			t.Error("a refused refresh changed what the box remembers")
		}
		// A box that never saw the newer metadata takes the old one: only
		// what a box remembers protects it.
		if _, err := v.box(t.TempDir(), v.now); err != nil {
			t.Errorf("a fresh box on the old metadata: %v", err)
		}
	})
	t.Run("expired timestamp", func(t *testing.T) {
		v := newVendor(t)
		v.publish("8.0.0")
		if _, err := v.box(t.TempDir(), v.now.Add(8*24*time.Hour)); !errors.Is(err, ErrExpired) {
			t.Errorf("8 days after a 7-day timestamp: %v, want ErrExpired", err)
		}
	})
	t.Run("frozen mirror and a box without a clock", func(t *testing.T) {
		v := newVendor(t)
		v.publish("8.0.0")
		frozen := t.TempDir()
		os.CopyFS(frozen, os.DirFS(filepath.Join(v.dir, repo.MetadataDir)))
		v.now = v.now.Add(10 * 24 * time.Hour)
		v.edit(func(r *editor.Repo) error { return nil }) // the vendor's refresh
		state := t.TempDir()
		epoch := time.Unix(0, 0)
		c, err := v.box(state, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Issued.Equal(v.now) {
			t.Errorf("issued %v, want %v", c.Issued, v.now)
		}
		// The mirror now freezes on the metadata of 10 days ago; the box's
		// clock says 1970. The newest timestamp it saw says otherwise.
		os.RemoveAll(filepath.Join(v.dir, repo.MetadataDir))
		os.CopyFS(filepath.Join(v.dir, repo.MetadataDir), os.DirFS(frozen))
		os.RemoveAll(filepath.Join(state, "metadata")) // even without the metadata it kept
		if _, err := v.box(state, epoch); !errors.Is(err, ErrExpired) {
			t.Errorf("frozen metadata, clock at 1970: %v, want ErrExpired", err)
		}
		// So does the rescue image's own build time.
		_, err = Open(context.Background(), Options{URL: v.srv.URL, Root: v.root, State: t.TempDir(), Floor: v.now, Now: func() time.Time { return epoch }, Fetch: fetch.Options{Attempts: 1}})
		if !errors.Is(err, ErrExpired) {
			t.Errorf("frozen metadata, floor after its expiry: %v, want ErrExpired", err)
		}
	})
	t.Run("signed by a key the root does not list", func(t *testing.T) {
		v := newVendor(t)
		v.publish("8.0.0")
		// The thief of the old timestamp key keeps signing after the
		// vendor rotated it.
		thief := t.TempDir()
		os.CopyFS(thief, os.DirFS(v.keys))
		v.edit(func(r *editor.Repo) error { return r.RotateKey("timestamp") })
		if _, err := v.box(t.TempDir(), v.now); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
		good := hashTree(t, v.dir)
		v.now = v.now.Add(time.Minute)
		r, err := editor.Open(v.dir, thief, v.opts())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(); err == nil {
			t.Fatal("the old timestamp key signed a repository whose root no longer lists it")
		}
		_ = good
		// Forge it by hand: the thief's key signs a timestamp.
		forgeTimestamp(t, v, thief)
		if _, err := v.box(t.TempDir(), v.now); !errors.Is(err, ErrSignature) {
			t.Errorf("timestamp signed by a retired key: %v, want ErrSignature", err)
		}
	})
}

// forgeTimestamp signs a new timestamp with the timestamp key in keys.
func forgeTimestamp(t *testing.T, v *vendor, keys string) {
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
	p := filepath.Join(v.dir, repo.MetadataDir, "timestamp.json")
	ts, err := metadata.Timestamp().FromFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ts.Signed.Version++
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
	v := newVendor(t)
	v.publish("8.0.0")
	state := t.TempDir()
	if _, err := v.box(state, v.now); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp", "root"} {
		v.now = v.now.Add(time.Hour)
		v.edit(func(r *editor.Repo) error { return r.RotateKey(role) })
	}
	v.edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
	for _, s := range []string{state, t.TempDir()} {
		c, err := v.box(s, v.now)
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
	retired, _ := filepath.Glob(filepath.Join(v.keys, "*.retired-*.pem"))
	if len(retired) != 5 {
		t.Errorf("%d retired keys kept, want 5", len(retired))
	}
	// The root cannot be rotated without its key.
	os.Remove(filepath.Join(v.keys, "root.pem"))
	before := hashTree(t, v.dir)
	if err := v.try(func(r *editor.Repo) error { return r.RotateKey("root") }); !errors.Is(err, editor.ErrNoKey) {
		t.Errorf("rotating the root without its key: %v, want ErrNoKey", err)
	}
	if hashTree(t, v.dir) != before {
		t.Error("a refused rotation wrote")
	}
}

// TestEditorRefusals: what would break the repository is refused, and
// nothing is written.
func TestEditorRefusals(t *testing.T) {
	v := newVendor(t)
	v.publish("8.0.0", "8.1.0", "8.2.0")
	v.edit(func(r *editor.Repo) error {
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
			dir := v.releaseOf("8.1.0", "rebuilt")
			_, err := r.Publish(dir, v.pk)
			return err
		}, editor.ErrConflict},
		{"a release signed by another key", func(r *editor.Repo) error {
			other := newVendor(t)
			_, err := r.Publish(other.release("8.3.0"), v.pk)
			return err
		}, sign.ErrBadSignature},
		{"a rollout with nothing to phase from", func(r *editor.Repo) error {
			return r.SetDefault("acme", "camrec", "8.2.0", &editor.RolloutSpec{StartFraction: 0.1, Duration: time.Hour})
		}, nil},
	} {
		before, keys := hashTree(t, v.dir), hashTree(t, v.keys)
		err := v.try(tc.change)
		if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		if hashTree(t, v.dir) != before || hashTree(t, v.keys) != keys {
			t.Errorf("%s: refused, but the repository or its keys changed", tc.name)
		}
	}
}
