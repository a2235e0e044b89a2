package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// reforge edits the manifest of the backup in dir and writes SHA256SUMS
// (of the pieces in the folder) and COMPLETE again to match, as anyone
// holding the key can; id, when
// set, decrypts and encrypts the manifest.
func reforge(t *testing.T, dir string, id *age.X25519Identity, edit func(*Manifest)) {
	t.Helper()
	mname := ManifestFile
	if id != nil {
		mname += ".age"
	}
	data, err := os.ReadFile(filepath.Join(dir, mname))
	if err != nil {
		t.Fatal(err)
	}
	if id != nil {
		r, err := age.Decrypt(bytes.NewReader(data), id)
		if err != nil {
			t.Fatal(err)
		}
		data, _ = io.ReadAll(r)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	data, _ = json.MarshalIndent(m, "", "  ")
	if id != nil {
		if data, err = encrypt(data, []age.Recipient{id.Recipient()}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, mname), data, 0o644)
	var sums bytes.Buffer
	for _, e := range m.Entries {
		for _, p := range e.Pieces {
			if _, err := os.Stat(filepath.Join(dir, p.Name)); err == nil && !strings.Contains(p.Name, "..") {
				fmt.Fprintf(&sums, "%s  %s\n", p.SHA256, p.Name)
			}
		}
	}
	fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(data), mname)
	os.WriteFile(filepath.Join(dir, SumsFile), sums.Bytes(), 0o644)
	if err := MarkComplete(dir); err != nil {
		t.Fatal(err)
	}
}

func TestSeal(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	items := []Item{dirItem("/etc/camrec"), fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)}
	dir := forged(t, Manifest{Host: "camrec-a"}, items)
	o := restoreOptions()
	o.Secret = secret
	top, root, _ := world(t)
	before := treeHash(t, top)
	if err := CheckSeal(dir, secret); !errors.Is(err, ErrNotSealed) {
		t.Errorf("unsealed: %v", err)
	}
	if _, err := Restore(dir, root, o); !errors.Is(err, ErrNotSealed) {
		t.Errorf("restore of an unsealed backup with a secret: %v", err)
	}
	if err := Seal(dir, secret); err != nil {
		t.Fatal(err)
	}
	if err := CheckSeal(dir, secret); err != nil {
		t.Fatalf("sealed: %v", err)
	}
	other, _ := NewSecret()
	if err := CheckSeal(dir, other); !errors.Is(err, ErrBadSeal) {
		t.Errorf("another machine's secret: %v", err)
	}
	if err := Seal(dir, secret[:16]); err == nil {
		t.Error("sealed with a 16-byte secret")
	}
	sealed, _ := os.ReadFile(filepath.Join(dir, SealFile))

	// The key's holder adds a setuid program under an allowed path and
	// makes every sum and COMPLETE match: only the seal tells.
	reforge(t, dir, nil, func(m *Manifest) {
		m.Entries[1].Mode = 0o4755
	})
	if err := Verify(dir, nil); err != nil || !IsComplete(dir) {
		t.Fatalf("the forged backup verifies (%v) and is complete: the seal is what tells", err)
	}
	if err := CheckSeal(dir, secret); !errors.Is(err, ErrBadSeal) {
		t.Errorf("edited manifest: %v", err)
	}
	if _, err := Restore(dir, root, o); !errors.Is(err, ErrBadSeal) {
		t.Errorf("restore of an edited backup: %v", err)
	}
	if _, err := ChooseFor([]Info{{Name: "b", Dir: dir, Complete: true}}, "", o); !errors.Is(err, ErrBadSeal) {
		t.Errorf("choosing an edited backup: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SealFile), []byte("hmac-sha256 v1 zz\n"), 0o644)
	if err := CheckSeal(dir, secret); !errors.Is(err, ErrBadSeal) {
		t.Errorf("a SEAL that is not one: %v", err)
	}
	if treeHash(t, top) != before {
		t.Error("a refused restore changed the tree")
	}

	// A plain manifest added beside an encrypted one is refused, not
	// preferred.
	os.WriteFile(filepath.Join(dir, SealFile), sealed, 0o644)
	os.WriteFile(filepath.Join(dir, ManifestFile+".age"), []byte("x"), 0o644)
	if err := CheckSeal(dir, secret); !errors.Is(err, ErrCorrupt) {
		t.Errorf("two manifests: %v", err)
	}
}

// TestEncryptedManifestIsChecked: the entries of an encrypted manifest get
// the same checks as a plain one's, once decrypted (Verify cannot read
// them): a piece named outside the backup folder is refused, not read.
func TestEncryptedManifestIsChecked(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	base := t.TempDir()
	dir := filepath.Join(base, "b")
	items := []Item{dirItem("/etc/camrec"), fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)}
	if _, err := Write(dir, Manifest{Host: "camrec-a", MachineID: &here}, items, Options{Recipients: []string{id.Recipient().String()}}); err != nil {
		t.Fatal(err)
	}
	o := restoreOptions()
	o.Identities = []age.Identity{id}
	os.Rename(filepath.Join(dir, "files/etc/camrec/camrec.conf.age"), filepath.Join(base, "elsewhere.age"))
	reforge(t, dir, id, func(m *Manifest) {
		m.Entries[1].Pieces[0].Name = "../elsewhere.age"
	})
	if err := Verify(dir, nil); err != nil {
		t.Fatalf("Verify checks the stored files only: %v", err)
	}
	top, root, _ := world(t)
	before := treeHash(t, top)
	if _, err := Restore(dir, root, o); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a piece outside the backup folder: %v", err)
	}
	if treeHash(t, top) != before {
		t.Error("a refused restore changed the tree")
	}
}

// TestManifestChecks: manifests passeur does not write are refused by
// Verify (plain) and Restore, before anything is written.
func TestManifestChecks(t *testing.T) {
	items := []Item{dirItem("/etc/camrec"), fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640), fileItem("/etc/camrec/b", "0123456789", 0o644)}
	for _, c := range []struct {
		name string
		edit func(*Manifest)
		want error
	}{
		{"piece named outside the folder", func(m *Manifest) { m.Entries[2].Pieces[0].Name = "../../b" }, ErrCorrupt},
		{"piece named after another entry", func(m *Manifest) { m.Entries[2].Pieces[0].Name = "files/etc/camrec/camrec.conf" }, ErrCorrupt},
		{"piece larger than the manifest says", func(m *Manifest) { m.Entries[2].Pieces[0].Size = 4 }, ErrCorrupt},
		{"content larger than its pieces", func(m *Manifest) { m.Entries[2].Size = 1 << 40 }, ErrCorrupt},
		{"negative size", func(m *Manifest) { m.Entries[2].Size = -1 }, ErrCorrupt},
		{"too many pieces", func(m *Manifest) {
			m.Entries[2].Pieces = make([]Piece, maxPieces+1)
		}, ErrCorrupt},
		{"unknown origin", func(m *Manifest) { m.Entries[2].Origin = "elsewhere" }, ErrCorrupt},
		{"unknown type", func(m *Manifest) { m.Entries[0].Type = "fifo" }, ErrCorrupt},
		{"owner -1 (chown's leave-as-is)", func(m *Manifest) { m.Entries[1].UID = -1 }, ErrCorrupt},
		{"recipients in a plain manifest", func(m *Manifest) { m.Recipients = []string{"age1x"} }, ErrCorrupt},
		{"path with a NUL byte", func(m *Manifest) { m.Entries[0].Path = "/etc/camrec\x00x" }, ErrUnsafeEntry},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := forged(t, Manifest{Host: "camrec-a"}, items)
			reforge(t, dir, nil, c.edit)
			if err := Verify(dir, nil); !errors.Is(err, c.want) {
				t.Errorf("verify: %v, want %v", err, c.want)
			}
			top, root, _ := world(t)
			before := treeHash(t, top)
			if _, err := Restore(dir, root, restoreOptions()); !errors.Is(err, c.want) {
				t.Errorf("restore: %v, want %v", err, c.want)
			}
			if treeHash(t, top) != before {
				t.Error("a refused restore changed the tree")
			}
		})
	}
}

func TestManifestBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"format":1,"entries":[`)
	for i := range maxEntries + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"path":"/etc/camrec/d%d","origin":"system","type":"dir"}`, i)
	}
	b.WriteString("]}")
	if _, err := parseManifest([]byte(b.String()), false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("%d entries: %v", maxEntries+1, err)
	}
	if _, err := parseManifest(make([]byte, maxManifestBytes+1), false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a manifest over %d bytes: %v", maxManifestBytes, err)
	}
}

func TestParseSums(t *testing.T) {
	sum := fmt.Sprintf("%x", sha256.Sum256(nil))
	for _, line := range []string{
		sum + "  ../MANIFEST.json",
		sum + "  /etc/shadow",
		sum + "  files/etc/../../x",
		sum + "  files/./x",
		sum + "  files//x",
		sum + "  files/a\\b",
		sum + "  files/a:b",
		sum + "  files/x.",
		sum + "  files/%2",
		sum + "  files/%2f",
		sum + "  files/a%2Fb",
		sum + "  elsewhere/x",
		sum + "  files/",
		strings.ToUpper(sum) + "  files/x",
		sum + " files/x",
		"",
	} {
		if _, err := parseSums([]byte(line + "\n")); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%q: %v", line, err)
		}
	}
	if _, err := parseSums([]byte(sum + "  files/x\n" + sum + "  files/x\n")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a name twice: %v", err)
	}
	good := sum + "  files/etc/camrec/a%3Ab.age.000\n" + sum + "  recovered/var/lib/x%2E\n" + sum + "  MANIFEST.json\n"
	if sums, err := parseSums([]byte(good)); err != nil || len(sums) != 3 {
		t.Errorf("good sums: %v %v", sums, err)
	}
}
