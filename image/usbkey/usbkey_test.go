package usbkey

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
)

// keyPair makes a signing key and returns it with its public key.
func keyPair(t *testing.T) (minisign.PrivateKey, minisign.PublicKey) {
	t.Helper()
	pub, priv, err := sign.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	var sk minisign.PrivateKey
	var pk minisign.PublicKey
	if err := sk.UnmarshalText(priv); err != nil {
		t.Fatal(err)
	}
	if err := pk.UnmarshalText(bytes.TrimSpace(pub)); err != nil {
		t.Fatal(err)
	}
	return sk, pk
}

// signRelease writes manifest.json and its signature by sk into dir.
func signRelease(t *testing.T, dir string, manifest []byte, sk minisign.PrivateKey) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"+sign.Ext), sign.Sign(sk, manifest, "test release"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// content makes a key's content from small stand-ins and a release of two
// small artifacts, signed by a key it trusts.
func content(t *testing.T) Content {
	t.Helper()
	dir := t.TempDir()
	put := func(name, data string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o644)
		return p
	}
	data, err := os.ReadFile("../release/testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(dir, "rel")
	os.MkdirAll(rel, 0o755)
	m.Artifacts = nil
	for _, name := range []string{"esp", "root"} {
		a, err := release.WriteArtifact(rel, name, bytes.NewReader(bytes.Repeat([]byte(name), 1000)))
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts = append(m.Artifacts, a)
	}
	mdata, _ := m.Marshal()
	sk, pk := keyPair(t)
	signRelease(t, rel, mdata, sk)
	return Content{Loader: put("loader.efi", "MZ loader"), Kernel: put("vmlinuz", "kernel"), Initramfs: put("initramfs", "cpio"),
		Cmdline: "console=ttyS0", Releases: []string{rel}, Trusted: []minisign.PublicKey{pk}, Config: []byte(`{"unattended": false, "repo": "http://10.0.2.100"}`)}
}

func tool(t *testing.T, names ...string) {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s: %v", n, err)
		}
	}
}

// TestImage makes a key image: sfdisk sees one EFI system partition from
// 1 MiB, fsck.fat finds its FAT32 clean, and mtools reads the tree back.
func TestImage(t *testing.T) {
	tool(t, "sfdisk", "fsck.vfat", "mtype", "dd")
	c := content(t)
	img := filepath.Join(t.TempDir(), "key.img")
	if err := Image(img, 256<<20, c); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sfdisk", "-d", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "start=        2048") || !strings.Contains(strings.ToUpper(string(out)), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") || !strings.Contains(string(out), `name="passeur"`) {
		t.Fatalf("sfdisk -d: %v\n%s", err, out)
	}
	part := filepath.Join(t.TempDir(), "part.img")
	if out, err := exec.Command("dd", "if="+img, "of="+part, "bs=1M", "skip=1", "count=254", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	for p, want := range map[string]string{
		"/loader/entries/passeur-migrate.conf": "options console=ttyS0 passeur.mode=migrate",
		"/loader/entries/passeur-shell.conf":   "options console=ttyS0 passeur.mode=shell",
		"/loader/loader.conf":                  "default passeur-migrate.conf",
		"/passeur/media.json":                  `{"format":1}`,
		"/passeur/config.json":                 `"repo": "http://10.0.2.100"`,
		"/passeur/vmlinuz":                     "kernel",
		"/EFI/BOOT/BOOTX64.EFI":                "MZ loader",
		"/releases/camrec-8.0.0/root.img.zst":  "",
	} {
		out, err := exec.Command("mtype", "-i", part, "::"+p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s on the key: %v\n%s", p, err, out)
		}
	}
	if out, err := exec.Command("mdir", "-i", part, "::/Backup").CombinedOutput(); err != nil {
		t.Errorf("no Backup folder: %v\n%s", err, out)
	}
}

// TestPrepare copies the tree into a folder holding an earlier backup,
// which stays.
func TestPrepare(t *testing.T) {
	c := content(t)
	dir := t.TempDir()
	old := filepath.Join(dir, "Backup/camrec-a/2026-01-01T000000Z/COMPLETE")
	os.MkdirAll(filepath.Dir(old), 0o755)
	os.WriteFile(old, []byte("x"), 0o644)
	if err := Prepare(dir, c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"passeur/media.json", "loader/entries/passeur-backup.conf", "releases/camrec-8.0.0/manifest.json.minisig", "releases/camrec-8.0.0/esp.img.zst", "EFI/BOOT/BOOTX64.EFI"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("the earlier backup is gone: %v", err)
	}
	c.Config = []byte(`{"mode": "explode"}`)
	if err := Prepare(t.TempDir(), c); err == nil || !strings.Contains(err.Error(), "explode") {
		t.Errorf("a bad config: %v", err)
	}
}

// TestRefusesUnverifiedRelease: Image and Prepare put on a key only
// releases signed by a trusted key, each in a folder of its own; else they
// refuse by name and write nothing.
func TestRefusesUnverifiedRelease(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, c *Content)
		want  error
	}{
		{"no trusted key", func(t *testing.T, c *Content) { c.Trusted = nil }, ErrNoTrustedKey},
		{"signed by another key", func(t *testing.T, c *Content) {
			_, pk := keyPair(t)
			c.Trusted = []minisign.PublicKey{pk}
		}, sign.ErrBadSignature},
		{"unsigned", func(t *testing.T, c *Content) {
			os.Remove(filepath.Join(c.Releases[0], "manifest.json"+sign.Ext))
		}, sign.ErrBadSignature},
		{"signature stand-in", func(t *testing.T, c *Content) {
			os.WriteFile(filepath.Join(c.Releases[0], "manifest.json"+sign.Ext), []byte("signature stand-in\n"), 0o644)
		}, sign.ErrBadSignature},
		{"the same release twice", func(t *testing.T, c *Content) { c.Releases = append(c.Releases, c.Releases[0]) }, ErrSamePlace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := content(t)
			tc.spoil(t, &c)
			dir := t.TempDir()
			if err := Image(filepath.Join(dir, "key.img"), 256<<20, c); !errors.Is(err, tc.want) {
				t.Errorf("Image = %v, want %v", err, tc.want)
			}
			if err := Prepare(dir, c); !errors.Is(err, tc.want) {
				t.Errorf("Prepare = %v, want %v", err, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("written: %v", ents)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	for name, ok := range map[string]bool{"camrec-8.0.0": true, "a/b": true, "camrec-8.0.0-x/../../../passeur": false, "..": false, "": false, "x/../..": false, "/abs": true} {
		p, err := within("/releases", name)
		if ok != (err == nil) || err != nil && !errors.Is(err, ErrOutsideFolder) || ok && !strings.HasPrefix(p, "/releases/") {
			t.Errorf("within(/releases, %q) = %q, %v", name, p, err)
		}
	}
}
