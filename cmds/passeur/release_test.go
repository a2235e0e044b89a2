package main

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

// artifactFile stores content as an artifact of the release in dir.
func artifactFile(t *testing.T, dir, name string, content []byte) release.Artifact {
	t.Helper()
	a, err := release.WriteArtifact(dir, name, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testRelease writes a small but complete release into dir.
func testRelease(t *testing.T, dir string) string {
	t.Helper()
	root := make([]byte, 4<<20)
	rand.New(rand.NewSource(8)).Read(root[:1<<20])
	from, _ := version.ParseRange(">=7.14.0.2 <8")
	size := func(s string) release.Size { z, _ := release.ParseSize(s); return z }
	m := release.Manifest{
		Format: release.Format, Product: "camrec", Version: version.MustParse("8.0.0"), Arch: "amd64",
		Layout: release.Layout{Table: "gpt", Partitions: []release.Partition{
			{Name: "esp", Type: "esp", Size: size("64MiB"), Role: release.RoleArtifact, Artifact: "esp"},
			{Name: "root", Type: "root-x86-64", Size: size("256MiB"), Role: release.RoleArtifact, Artifact: "root"},
			{Name: "state", Type: "var", Size: size("rest"), Role: release.RoleEmpty, Filesystem: "ext4"},
		}},
		Artifacts:    []release.Artifact{artifactFile(t, dir, "esp", bytes.Repeat([]byte("ESP!"), 1<<18)), artifactFile(t, dir, "root", root)},
		Recognize:    release.Recognize{Files: []string{"/etc/camrec/camrec.conf"}, VersionFile: "/etc/camrec/version", VersionRegexp: `^camrec (\S+)`},
		MigrateFrom:  &from,
		Config:       []string{"/etc/camrec"},
		Index:        []string{"/var/lib/camrec/index"},
		DataVolumes:  release.DataVolumes{FstabMountpoints: []string{"/srv/recordings*"}},
		MinMediaFree: 1 << 30,
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "manifest.json")
	os.WriteFile(path, data, 0o644)
	return path
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("passeur %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func TestReleaseSignVerifyInspect(t *testing.T) {
	dir := t.TempDir()
	manifest := testRelease(t, dir)
	key := filepath.Join(t.TempDir(), "vendor")
	runOK(t, "release", "keygen", "-out", key)
	if err := run([]string{"release", "keygen", "-out", key}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Error("keygen over existing keys: want an error")
	}
	runOK(t, "release", "sign", "-key", key+".key", manifest)
	out := runOK(t, "release", "verify", "-pub", key+".pub", manifest)
	if !strings.Contains(out, "camrec 8.0.0: signature, manifest and 2 artifacts verified") {
		t.Errorf("verify said %q", out)
	}
	if _, err := exec.LookPath("minisign"); err == nil {
		if o, err := exec.Command("minisign", "-Vm", manifest, "-p", key+".pub").CombinedOutput(); err != nil {
			t.Errorf("minisign CLI rejects the signed manifest: %v\n%s", err, o)
		}
	}
	out = runOK(t, "release", "inspect", manifest)
	for _, want := range []string{"camrec", ">=7.14.0.2 <8", "root-x86-64", "256MiB", "new ext4"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}

	// The vendor's procedure on a repository: publish, an account, its
	// test tag, its default phased in, a halt, a key rotation.
	repoDir, keys := t.TempDir(), filepath.Join(t.TempDir(), "keys")
	out = runOK(t, "repo", "init", "-repo", repoDir, "-keys", keys)
	if !strings.Contains(out, filepath.Join(repoDir, "metadata", "1.root.json")) {
		t.Errorf("init said %q", out)
	}
	out = runOK(t, "repo", "publish", "-repo", repoDir, "-keys", keys, "-trust", key+".pub", "-tag", "stable", dir)
	if !strings.Contains(out, "published camrec 8.0.0") {
		t.Errorf("publish said %q", out)
	}
	runOK(t, "repo", "account", "-repo", repoDir, "-keys", keys, "acme")
	runOK(t, "repo", "test-tag", "-repo", repoDir, "-keys", keys, "acme", "camrec", "test-8", "8.0.0")
	runOK(t, "repo", "default", "-repo", repoDir, "-keys", keys, "acme", "camrec", "8.0.0")
	runOK(t, "repo", "barrier", "-repo", repoDir, "-keys", keys, "camrec", "8.0.0")
	runOK(t, "repo", "rotate", "-repo", repoDir, "-keys", keys, "timestamp")
	out = runOK(t, "repo", "show", "-repo", repoDir)
	for _, want := range []string{"camrec", "8.0.0", "barrier", "tag stable", "account acme", "default 8.0.0", "tag test-8: 8.0.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range [][]string{
		{"tag", "camrec", "stable", "9.0.0"},                            // not published
		{"test-tag", "acme", "camrec", "test-9", "9.0.0"},               // not published
		{"default", "-rollout-start", "0.1", "acme", "camrec", "8.0.0"}, // nothing to phase from
		{"halt", "acme", "camrec"},                                      // no rollout
		{"account", "acme"},                                             // twice
		{"dead-end", "camrec", "8.1.0"},                                 // not published
	} {
		args := append([]string{"repo", bad[0], "-repo", repoDir, "-keys", keys}, bad[1:]...)
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("passeur %s: want a refusal", strings.Join(args, " "))
		}
	}
	// A flipped byte in an artifact, then in the manifest, is named.
	art := filepath.Join(dir, "root.img.zst")
	good, _ := os.ReadFile(art)
	bad := bytes.Clone(good)
	bad[len(bad)/3] ^= 1
	os.WriteFile(art, bad, 0o644)
	err := run([]string{"release", "verify", "-pub", key + ".pub", manifest}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, release.ErrArtifactMismatch) {
		t.Errorf("tampered artifact: verify = %v, want ErrArtifactMismatch", err)
	}
	os.WriteFile(art, good, 0o644)
	m, _ := os.ReadFile(manifest)
	os.WriteFile(manifest, bytes.Replace(m, []byte(`"8.0.0"`), []byte(`"8.0.1"`), 1), 0o644)
	err = run([]string{"release", "verify", "-pub", key + ".pub", manifest}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, sign.ErrBadSignature) {
		t.Errorf("tampered manifest: verify = %v, want ErrBadSignature", err)
	}
}

func TestReleaseSignRefusesBrokenManifest(t *testing.T) {
	dir := t.TempDir()
	manifest := testRelease(t, dir)
	key := filepath.Join(dir, "k")
	runOK(t, "release", "keygen", "-out", key)
	m, _ := os.ReadFile(manifest)
	os.WriteFile(manifest, bytes.Replace(m, []byte(`"product": "camrec",`), nil, 1), 0o644)
	err := run([]string{"release", "sign", "-key", key + ".key", manifest}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, release.ErrMissingField) {
		t.Errorf("sign of a manifest without product = %v, want ErrMissingField", err)
	}
	if _, err := os.Stat(manifest + sign.Ext); err == nil {
		t.Error("a signature was written for a broken manifest")
	}
}
