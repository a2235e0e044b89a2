package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/usbkey"
	"github.com/passeur/passeur/image/version"
)

// keySetup makes what passeur key reads: a build output with stand-ins for
// the kernel and initramfs, a loader, a release signed by a vendor key and
// a second key that signed nothing. It returns the flags common to every
// run, the release folder and the key files' prefixes.
func keySetup(t *testing.T) (flags []string, rel, vendor, other string) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.MkdirAll(filepath.Join(out, "qemu-x86_64"), 0o755)
	os.WriteFile(filepath.Join(out, "qemu-x86_64", "vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(out, "qemu-x86_64", "initramfs.cpio.zst"), []byte("the rescue initramfs"), 0o644)
	loader := filepath.Join(dir, "loader.efi")
	os.WriteFile(loader, []byte("MZ loader"), 0o644)
	rel = filepath.Join(dir, "camrec-8.0.0")
	os.MkdirAll(rel, 0o755)
	manifest := testRelease(t, rel)
	vendor, other = filepath.Join(dir, "vendor"), filepath.Join(dir, "other")
	runOK(t, "release", "keygen", "-out", vendor)
	runOK(t, "release", "keygen", "-out", other)
	runOK(t, "release", "sign", "-key", vendor+".key", manifest)
	return []string{"key", "-out", out, "-loader", loader}, rel, vendor, other
}

// TestKeyMakesVerifiedKey makes a key at the default size (2 GiB, which once
// panicked in fat.Fixup) from a release signed by the trusted key.
func TestKeyMakesVerifiedKey(t *testing.T) {
	flags, rel, vendor, _ := keySetup(t)
	img := filepath.Join(t.TempDir(), "key.img")
	out := runOK(t, append(flags, "-image", img, "-release", rel, "-trust", vendor+".pub")...)
	if !strings.Contains(out, "(2GiB)") {
		t.Errorf("passeur key said %q", out)
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 2<<30 {
		t.Fatalf("key image: %v", err)
	}
	if _, err := exec.LookPath("mtype"); err == nil {
		got, err := exec.Command("mtype", "-i", img+"@@1M", "::/releases/camrec-8.0.0/manifest.json").Output()
		want, _ := os.ReadFile(filepath.Join(rel, "manifest.json"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("the key's manifest: %v\n%s", err, got)
		}
		if got, _ := exec.Command("mtype", "-i", img+"@@1M", "::/passeur/initramfs.cpio.zst").Output(); string(got) != "the rescue initramfs" {
			t.Errorf("the key's initramfs: %q", got)
		}
	}
}

// TestKeyRefusesUnverifiedRelease: passeur key puts on a key only releases
// signed by a -trust key, with safe names; anything else is refused by
// name before the image (or the folder) is written.
func TestKeyRefusesUnverifiedRelease(t *testing.T) {
	for _, tc := range []struct {
		name  string
		trust string // "vendor" or "other"
		spoil func(t *testing.T, rel, vendor string)
		want  error
	}{
		{"no -trust", "", nil, usbkey.ErrNoTrustedKey},
		{"signed by another key", "other", nil, sign.ErrBadSignature},
		{"unsigned", "vendor", func(t *testing.T, rel, _ string) {
			os.Remove(filepath.Join(rel, "manifest.json"+sign.Ext))
		}, sign.ErrBadSignature},
		{"manifest changed after signing", "vendor", func(t *testing.T, rel, _ string) {
			replace(t, filepath.Join(rel, "manifest.json"), `"min_media_free": 1073741824`, `"min_media_free": 1073741825`)
		}, sign.ErrBadSignature},
		{"traversal version signed by the vendor", "vendor", func(t *testing.T, rel, vendor string) {
			// What the vendor's key signs is still checked: the version
			// once placed the release's artifacts over the key's own
			// initramfs (/passeur/initramfs.cpio.zst).
			m := filepath.Join(rel, "manifest.json")
			replace(t, m, `"version": "8.0.0"`, `"version": "8.0.0-x/../../../passeur"`)
			replace(t, m, `"file": "root.img.zst"`, `"file": "initramfs.cpio.zst"`)
			os.Rename(filepath.Join(rel, "root.img.zst"), filepath.Join(rel, "initramfs.cpio.zst"))
			data, _ := os.ReadFile(m)
			sk, err := sign.LoadPrivateKey(vendor+".key", "")
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(m+sign.Ext, sign.Sign(sk, data, "crafted"), 0o644)
		}, version.ErrSyntax},
		{"artifact changed after signing", "vendor", func(t *testing.T, rel, _ string) {
			f := filepath.Join(rel, "esp.img.zst")
			b, _ := os.ReadFile(f)
			b[len(b)/2] ^= 1
			os.WriteFile(f, b, 0o644)
		}, release.ErrArtifactMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags, rel, vendor, other := keySetup(t)
			if tc.spoil != nil {
				tc.spoil(t, rel, vendor)
			}
			trust := []string{}
			switch tc.trust {
			case "vendor":
				trust = []string{"-trust", vendor + ".pub"}
			case "other":
				trust = []string{"-trust", other + ".pub"}
			}
			dir := t.TempDir()
			img := filepath.Join(dir, "key.img")
			err := run(append(append(flags, "-image", img, "-release", rel), trust...), &bytes.Buffer{}, &bytes.Buffer{})
			if !errors.Is(err, tc.want) {
				t.Errorf("passeur key -image = %v, want %v", err, tc.want)
			}
			tree := filepath.Join(dir, "tree")
			os.Mkdir(tree, 0o755)
			err = run(append(append(flags, "-dir", tree, "-release", rel), trust...), &bytes.Buffer{}, &bytes.Buffer{})
			if !errors.Is(err, tc.want) {
				t.Errorf("passeur key -dir = %v, want %v", err, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("written: %v", ents)
			}
			if ents, _ := os.ReadDir(tree); len(ents) != 0 {
				t.Errorf("written into the key's folder: %v", ents)
			}
		})
	}
}

func replace(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil || !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s has no %q (%v)", file, old, err)
	}
	os.WriteFile(file, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}
