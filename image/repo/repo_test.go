package repo

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

func key(t *testing.T) (minisign.PrivateKey, string) {
	t.Helper()
	pub, priv, err := sign.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.pub"), pub, 0o644)
	os.WriteFile(filepath.Join(dir, "k.key"), priv, 0o600)
	sk, err := sign.LoadPrivateKey(filepath.Join(dir, "k.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	return sk, filepath.Join(dir, "k.pub")
}

// makeRelease writes a small signed release of camrec at version v.
func makeRelease(t *testing.T, sk minisign.PrivateKey, v string) string {
	t.Helper()
	dir := t.TempDir()
	a, err := release.WriteArtifact(dir, "root", bytes.NewReader(bytes.Repeat([]byte(v), 5000)))
	if err != nil {
		t.Fatal(err)
	}
	size, _ := release.ParseSize("64MiB")
	m := release.Manifest{Format: 1, Product: "camrec", Version: version.MustParse(v), Arch: "amd64",
		Layout:    release.Layout{Table: "gpt", Partitions: []release.Partition{{Name: "root", Type: "root-x86-64", Size: size, Role: "artifact", Artifact: "root"}}},
		Artifacts: []release.Artifact{a},
		Recognize: release.Recognize{VersionFile: "/etc/camrec/version", VersionRegexp: `^camrec (\S+)`},
		Config:    []string{"/etc/camrec"}, MinMediaFree: 1 << 20}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json"+sign.Ext), sign.Sign(sk, data, "test"), 0o644)
	return dir
}

func TestPublishTagResolve(t *testing.T) {
	sk, pubPath := key(t)
	pk, _ := sign.LoadPublicKey(pubPath)
	dir := t.TempDir()
	if _, err := Publish(dir, makeRelease(t, sk, "8.0.0"), sk, "stable"); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(dir, makeRelease(t, sk, "8.1.0-rc1"), sk, "test-lab"); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(dir, makeRelease(t, sk, "7.20"), sk); err != nil {
		t.Fatal(err)
	}
	ix, err := Load(dir, pk)
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Products["camrec"].Versions; len(got) != 3 || got[0] != "7.20" || got[2] != "8.1.0-rc1" {
		t.Errorf("versions = %v, want sorted 7.20, 8.0.0, 8.1.0-rc1", got)
	}
	for tag, want := range map[string]string{"stable": "8.0.0", "test-lab": "8.1.0-rc1", "7.20": "7.20"} {
		if v, err := ix.Resolve("camrec", tag); err != nil || v != want {
			t.Errorf("Resolve(%s) = %s, %v; want %s", tag, v, err, want)
		}
	}
	// Moving the test tag to stable's version, as an operator promotes.
	if err := Tag(dir, "camrec", "test-lab", "8.0.0", sk); err != nil {
		t.Fatal(err)
	}
	ix, _ = Load(dir, pk)
	if v, _ := ix.Resolve("camrec", "test-lab"); v != "8.0.0" {
		t.Errorf("test-lab -> %s after Tag", v)
	}
	if err := Tag(dir, "camrec", "stable", "9.9", sk); !errors.Is(err, ErrUnknown) {
		t.Errorf("tag to a missing version: %v, want ErrUnknown", err)
	}
	if err := Tag(dir, "camrec", "Stable!", "8.0.0", sk); !errors.Is(err, ErrBadTagName) {
		t.Errorf("bad tag name: %v", err)
	}
	if _, err := ix.Resolve("camrec", "nightly"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown tag: %v", err)
	}
	// The published release verifies in place, and minisign checks the index.
	if _, err := sign.VerifyFile(pk, filepath.Join(ReleaseDir(dir, "camrec", "8.0.0"), "manifest.json")); err != nil {
		t.Error(err)
	}
	if _, err := exec.LookPath("minisign"); err == nil {
		if out, err := exec.Command("minisign", "-Vm", filepath.Join(dir, IndexFile), "-p", pubPath).CombinedOutput(); err != nil {
			t.Errorf("minisign -V on the index: %v\n%s", err, out)
		}
	}
	// A tampered index is refused.
	idx := filepath.Join(dir, IndexFile)
	data, _ := os.ReadFile(idx)
	os.WriteFile(idx, bytes.Replace(data, []byte(`"stable": "8.0.0"`), []byte(`"stable": "7.20"`), 1), 0o644)
	if _, err := Load(dir, pk); !errors.Is(err, sign.ErrBadSignature) {
		t.Errorf("tampered index: %v, want ErrBadSignature", err)
	}
}

func TestPublishRefusesUnverifiedRelease(t *testing.T) {
	sk, _ := key(t)
	other, _ := key(t)
	if _, err := Publish(t.TempDir(), makeRelease(t, other, "8.0.0"), sk); !errors.Is(err, sign.ErrBadSignature) {
		t.Errorf("release signed by another key: %v, want ErrBadSignature", err)
	}
	rel := makeRelease(t, sk, "8.0.0")
	art := filepath.Join(rel, "root.img.zst")
	b, _ := os.ReadFile(art)
	b[len(b)/2] ^= 1
	os.WriteFile(art, b, 0o644)
	if _, err := Publish(t.TempDir(), rel, sk); !errors.Is(err, release.ErrArtifactMismatch) {
		t.Errorf("corrupt artifact: %v, want ErrArtifactMismatch", err)
	}
}
