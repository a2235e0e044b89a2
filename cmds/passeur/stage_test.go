package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/initramfs/obtain"
)

// TestStage: on a running camrec 8.0.0 of account acme, whose default is
// 8.2.0 behind a barrier at 8.1.0, passeur stage brings 8.2.0, 8.1.0
// passed through, verified, into the staging area, and records it; with
// 8.1.0 to be booted once, it brings 8.1.0. A staging area without room
// is refused before any release byte is written; a box on its version
// stages nothing.
func TestStage(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0", "8.1.0", "8.2.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier = true }); err != nil {
			return err
		}
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	system := func(ver string) string {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "etc/camrec"), 0o755)
		os.WriteFile(filepath.Join(dir, "etc/camrec/version"), []byte("camrec "+ver+"\n"), 0o644)
		return dir
	}
	opts := func(sys string, free int64) stageOptions {
		return stageOptions{dir: t.TempDir(), system: sys, root: v.Root, trusted: []minisign.PublicKey{v.PK}, repo: v.Srv.URL,
			box: obtain.Box{Account: "acme"}, fetch: fetch.Options{Attempts: 1},
			free:     func(string) (int64, error) { return free, nil },
			identity: func() string { return "box-1" }, now: func() time.Time { return v.Now }}
	}

	o := opts(system("8.0.0"), 1<<40)
	s, err := stage(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "8.2.0" || s.From != "8.0.0" || strings.Join(s.Through, " ") != "8.1.0" || s.Release != "releases/camrec-8.2.0" {
		t.Errorf("staged %+v: want 8.2.0 from 8.0.0 through 8.1.0", s)
	}
	manifest, err := os.ReadFile(filepath.Join(o.dir, s.Release, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(manifest); hex.EncodeToString(sum[:]) != s.ManifestSHA256 {
		t.Errorf("the record's manifest hash %s is not the staged manifest's", s.ManifestSHA256)
	}
	var onDisk Staged
	if data, err := os.ReadFile(filepath.Join(o.dir, StagedFile)); err != nil || json.Unmarshal(data, &onDisk) != nil || onDisk.ManifestSHA256 != s.ManifestSHA256 {
		t.Errorf("the record on disk: %v %+v", err, onDisk)
	}
	root, _ := os.ReadFile(filepath.Join(o.dir, s.Release, "root.img.zst"))
	if len(root) == 0 {
		t.Error("the release's artifact was not brought")
	}
	for _, p := range []string{"passeur/work", "releases/camrec-8.1.0"} {
		if _, err := os.Stat(filepath.Join(o.dir, p)); err == nil {
			t.Errorf("%s is in the staging area", p)
		}
	}
	if _, err := os.Stat(filepath.Join(o.dir, "passeur/repository/metadata/timestamp.json")); err != nil {
		t.Errorf("the staging area does not remember the repository: %v", err)
	}

	// No room: refused by name, no release byte written.
	o = opts(system("8.0.0"), 1<<20)
	if _, err := stage(context.Background(), o); !errors.Is(err, ErrNoRoom) {
		t.Errorf("1 MiB free: %v, want ErrNoRoom", err)
	}
	for _, p := range []string{"releases", StagedFile} {
		if _, err := os.Stat(filepath.Join(o.dir, p)); err == nil {
			t.Errorf("a refused stage wrote %s", p)
		}
	}

	// On its version: nothing to stage.
	o = opts(system("8.2.0"), 1<<40)
	if _, err := stage(context.Background(), o); !errors.Is(err, obtain.ErrUpToDate) {
		t.Errorf("on 8.2.0: %v, want ErrUpToDate", err)
	}

	// The command, its flags and the box's configuration file.
	dir := t.TempDir()
	for name, data := range map[string][]byte{"root.json": v.Root, "vendor.pub": []byte(pubKey(t, v.PK)),
		"config.json": []byte(`{"repo": "` + v.Srv.URL + `", "account": "acme"}`)} {
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	var out, errOut bytes.Buffer
	err = run([]string{"stage", "-dir", filepath.Join(dir, "staging"), "-repo-root", filepath.Join(dir, "root.json"),
		"-trust", filepath.Join(dir, "vendor.pub"), "-config", filepath.Join(dir, "config.json"), "-system", system("8.0.0"), "-release", "8.2.0"}, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "staged camrec 8.2.0 (passeur.release=8.2.0) from 8.0.0 through 8.1.0") {
		t.Errorf("passeur stage: %v\n%s%s", err, out.String(), errOut.String())
	}

	// 8.1.0 must boot once: the box stages 8.1.0.
	v.Edit(func(r *editor.Repo) error {
		return r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.BootOnce = true })
	})
	if s, err := stage(context.Background(), opts(system("8.0.0"), 1<<40)); err != nil || s.Version != "8.1.0" || len(s.Through) != 0 {
		t.Errorf("8.1.0 boot-once: %+v, %v; want 8.1.0", s, err)
	}
}

func pubKey(t *testing.T, pk minisign.PublicKey) string {
	t.Helper()
	text, err := pk.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(text) + "\n"
}
