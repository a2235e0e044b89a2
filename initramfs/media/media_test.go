package media

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/sign"
)

func keypair(t *testing.T) (minisign.PrivateKey, minisign.PublicKey, string) {
	t.Helper()
	pub, priv, err := sign.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vendor.pub"), pub, 0o644)
	os.WriteFile(filepath.Join(dir, "vendor.key"), priv, 0o600)
	sk, _ := sign.LoadPrivateKey(filepath.Join(dir, "vendor.key"), "")
	pk, _ := sign.LoadPublicKey(filepath.Join(dir, "vendor.pub"))
	os.Remove(filepath.Join(dir, "vendor.key"))
	return sk, pk, dir
}

func manifestJSON(t *testing.T, version string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../image/release/testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte(`"version": "8.0.0"`), []byte(`"version": "`+version+`"`), 1)
}

func TestReleases(t *testing.T) {
	sk, _, dir := keypair(t)
	other, _, _ := keypair(t)
	trusted, err := LoadTrusted(dir)
	if err != nil || len(trusted) != 1 {
		t.Fatalf("LoadTrusted = %v, %v", trusted, err)
	}
	good, newer := manifestJSON(t, "8.0.0"), manifestJSON(t, "8.1.0")
	files := fstest.MapFS{
		"releases/camrec-8.0.0/manifest.json":         {Data: good},
		"releases/camrec-8.0.0/manifest.json.minisig": {Data: sign.Sign(sk, good, "t")},
		"releases/camrec-8.1.0/manifest.json":         {Data: newer},
		"releases/camrec-8.1.0/manifest.json.minisig": {Data: sign.Sign(sk, newer, "t")},
		"releases/tampered/manifest.json":             {Data: bytes.Replace(good, []byte("7.14.0.2"), []byte("7.10"), 1)},
		"releases/tampered/manifest.json.minisig":     {Data: sign.Sign(sk, good, "t")},
		"releases/foreign/manifest.json":              {Data: good},
		"releases/foreign/manifest.json.minisig":      {Data: sign.Sign(other, good, "t")},
		"releases/unsigned/manifest.json":             {Data: good},
		"releases/README.txt":                         {Data: []byte("x")},
	}
	rels, refused := Releases(files, trusted)
	if len(rels) != 2 || len(refused) != 3 {
		t.Fatalf("%d good, %d refused: %+v", len(rels), len(refused), refused)
	}
	for _, r := range refused {
		if !errors.Is(r.Err, sign.ErrBadSignature) {
			t.Errorf("%s refused with %v, want ErrBadSignature", r.Dir, r.Err)
		}
	}
	best, err := Newest(rels, "")
	if err != nil || best.Manifest.Version.String() != "8.1.0" {
		t.Errorf("Newest = %+v, %v", best, err)
	}
	if _, err := Newest(rels, "other"); !errors.Is(err, ErrNoRelease) {
		t.Errorf("Newest of another product: %v", err)
	}
	if _, err := LoadTrusted(t.TempDir()); err == nil {
		t.Error("LoadTrusted of an empty folder: want an error")
	}
}
