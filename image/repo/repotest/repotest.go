// Package repotest is a vendor's repository for tests: made with fresh
// keys by image/repo/editor, served over loopback, with small signed
// releases of camrec to publish.
package repotest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

// Vendor is a repository being edited, served over loopback, with the
// minisign key its releases are signed with.
type Vendor struct {
	T          testing.TB
	Dir, Keys  string
	SK         minisign.PrivateKey
	PK         minisign.PublicKey
	Now        time.Time // the editor's clock
	Srv        *httptest.Server
	Root       []byte // the first root, as a rescue image carries it
	Rels       map[string]string
	TimestampD time.Duration // the timestamp's lifetime (0: the default)
}

// New makes an empty repository, with fresh keys, served on loopback.
func New(t testing.TB) *Vendor {
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
	v := &Vendor{T: t, Dir: t.TempDir(), Keys: t.TempDir(), SK: sk, PK: pk, Rels: map[string]string{},
		Now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	r, err := editor.Init(v.Dir, v.Keys, v.Opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
	v.Root, err = os.ReadFile(filepath.Join(v.Dir, repo.MetadataDir, "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	v.Srv = httptest.NewServer(http.FileServer(http.Dir(v.Dir)))
	t.Cleanup(v.Srv.Close)
	return v
}

func (v *Vendor) Opts() editor.Options {
	return editor.Options{Now: func() time.Time { return v.Now }, Timestamp: v.TimestampD}
}

// Edit opens the repository, changes it and commits, failing the test on
// any error.
func (v *Vendor) Edit(change func(r *editor.Repo) error) {
	v.T.Helper()
	if err := v.Try(change); err != nil {
		v.T.Fatal(err)
	}
}

// Try is Edit that returns the error.
func (v *Vendor) Try(change func(r *editor.Repo) error) error {
	r, err := editor.Open(v.Dir, v.Keys, v.Opts())
	if err != nil {
		return err
	}
	if err := change(r); err != nil {
		return err
	}
	return r.Commit()
}

// Release makes a small signed release of camrec at ver.
func (v *Vendor) Release(ver string) string { return v.ReleaseOf(ver, ver) }

// ReleaseOf makes a release whose root artifact repeats content.
func (v *Vendor) ReleaseOf(ver, content string) string {
	t := v.T
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
		Config:    []string{"/etc/camrec"}, MinMediaFree: 1 << 20,
		DataVolumes: release.DataVolumes{LabelPatterns: []string{"rec-*"}},
		Staging:     &release.Staging{Labels: []string{"rec-*"}, Dir: "passeur-staging"}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, release.ManifestFile), data, 0o644)
	os.WriteFile(filepath.Join(dir, release.ManifestFile+sign.Ext), sign.Sign(v.SK, data, "test"), 0o644)
	v.Rels[ver] = dir
	return dir
}

// Publish publishes new releases of camrec at vers.
func (v *Vendor) Publish(vers ...string) {
	v.T.Helper()
	v.Edit(func(r *editor.Repo) error {
		for _, ver := range vers {
			if _, err := r.Publish(v.Release(ver), v.PK); err != nil {
				return err
			}
		}
		return nil
	})
}

// Target is a target's signed length and hashes, as the vendor wrote them.
func (v *Vendor) Target(p string) *metadata.TargetFiles {
	v.T.Helper()
	r, err := editor.Open(v.Dir, v.Keys, v.Opts())
	if err != nil {
		v.T.Fatal(err)
	}
	for _, role := range append([]string{"targets"}, "account-acme") {
		if t := r.Targets(role); t != nil && t.Targets[p] != nil {
			return t.Targets[p]
		}
	}
	v.T.Fatalf("no target %s", p)
	return nil
}

// Tree hashes every regular file under dir, with its path: proof that a
// refusal wrote nothing, when taken before and after.
func Tree(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	var names []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
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
