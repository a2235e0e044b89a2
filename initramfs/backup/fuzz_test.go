package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
)

var update = flag.Bool("update", false, "write testdata/ again from a backup made by Write")

// seeds are the manifests and SHA256SUMS of two small backups Write made
// (testdata/plain, testdata/age: the latter's manifest decrypted), the
// fuzz targets' seed corpus.
var seeds = []struct {
	dir       string
	encrypted bool
}{{"testdata/plain", false}, {"testdata/age", true}}

// TestSeeds checks that the seeds are what this passeur writes and
// accepts; with -update it makes them again.
func TestSeeds(t *testing.T) {
	for _, s := range seeds {
		if *update {
			writeSeed(t, s.dir, s.encrypted)
		}
		data, err := os.ReadFile(filepath.Join(s.dir, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseManifest(data, s.encrypted); err != nil {
			t.Errorf("%s: %v", s.dir, err)
		}
		sums, err := os.ReadFile(filepath.Join(s.dir, SumsFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseSums(sums); err != nil {
			t.Errorf("%s: %v", s.dir, err)
		}
	}
}

func writeSeed(t *testing.T, out string, encrypted bool) {
	root := system(t)
	dir := filepath.Join(t.TempDir(), "b")
	o := Options{PieceSize: 5000}
	var id *age.X25519Identity
	if encrypted {
		id, _ = age.GenerateX25519Identity()
		o.Recipients = []string{id.Recipient().String()}
	}
	write(t, root, dir, o)
	mname := ManifestFile
	if encrypted {
		mname += ".age"
	}
	manifest, _ := os.ReadFile(filepath.Join(dir, mname))
	if encrypted {
		r, err := age.Decrypt(bytes.NewReader(manifest), id)
		if err != nil {
			t.Fatal(err)
		}
		manifest, _ = io.ReadAll(r)
	}
	sums, _ := os.ReadFile(filepath.Join(dir, SumsFile))
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, ManifestFile), manifest, 0o644)
	os.WriteFile(filepath.Join(out, SumsFile), sums, 0o644)
}

// FuzzManifest: whatever the bytes, parsing returns a named refusal or a
// manifest whose every entry is a clean absolute path once, every piece a
// name the writer makes for that entry, counts bounded; and what a restore
// would plan from it stays under the allowed paths, below no link of its
// own, its links relative and leading under the allowed paths.
func FuzzManifest(f *testing.F) {
	for _, s := range seeds {
		data, err := os.ReadFile(filepath.Join(s.dir, ManifestFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, s.encrypted)
	}
	f.Add([]byte(`{"format":1,"entries":[{"path":"/etc/camrec/a","origin":"system","type":"file","size":3,"sha256":"`+strings.Repeat("ab", 32)+
		`","pieces":[{"name":"files/etc/camrec/a.000","size":2,"sha256":"`+strings.Repeat("cd", 32)+`"},{"name":"files/etc/camrec/a.001","size":1,"sha256":"`+strings.Repeat("ef", 32)+`"}]}]}`), false)
	f.Add([]byte(`{"format":1,"entries":[{"path":"/etc/camrec","origin":"system","type":"dir"},{"path":"/etc/camrec/x","origin":"system","type":"symlink","target":"/"},{"path":"/etc/camrec/x/y","origin":"system","type":"dir"}]}`), false)
	f.Fuzz(func(t *testing.T, data []byte, encrypted bool) {
		m, err := parseManifest(data, encrypted)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("refusal without a name: %v", err)
			}
			return
		}
		checkAccepted(t, m, encrypted)
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseManifest(again, encrypted); err != nil {
			t.Fatalf("accepted, then refused once written again: %v", err)
		}
		steps, err := plan(m, RestoreOptions{Paths: paths, Map: func(p string) string { return "/restore" + p }})
		if err != nil {
			if !errors.Is(err, ErrNotAllowed) && !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("plan refusal without a name: %v", err)
			}
			return
		}
		checkPlan(t, steps)
	})
}

func checkAccepted(t *testing.T, m *Manifest, encrypted bool) {
	if len(m.Entries) > maxEntries || len(m.Recipients) > maxRecipients || encrypted != (len(m.Recipients) > 0) {
		t.Fatalf("%d entries, %d recipients, encrypted %v", len(m.Entries), len(m.Recipients), encrypted)
	}
	seen := map[string]bool{}
	for _, e := range m.Entries {
		if !strings.HasPrefix(e.Path, "/") || path.Clean(e.Path) != e.Path || e.Path == "/" {
			t.Fatalf("path %q accepted", e.Path)
		}
		key := strings.ToLower(storedName(e.Origin, e.Path))
		if seen[key] {
			t.Fatalf("%q twice", e.Path)
		}
		seen[key] = true
		if e.Mode&^0o7777 != 0 || e.UID < 0 || e.GID < 0 {
			t.Fatalf("%s: mode %o, owner %d:%d", e.Path, e.Mode, e.UID, e.GID)
		}
		if e.Type != "file" {
			if len(e.Pieces) > 0 {
				t.Fatalf("%s: a %s with pieces", e.Path, e.Type)
			}
			continue
		}
		if len(e.Pieces) == 0 || len(e.Pieces) > maxPieces {
			t.Fatalf("%s: %d pieces", e.Path, len(e.Pieces))
		}
		var stored int64
		for _, p := range e.Pieces {
			if !validStoredName(p.Name) || !strings.HasPrefix(p.Name, storedName(e.Origin, e.Path)) || !filepath.IsLocal(p.Name) {
				t.Fatalf("%s: piece %q accepted", e.Path, p.Name)
			}
			stored += p.Size
		}
		if stored < e.Size || !encrypted && stored != e.Size {
			t.Fatalf("%s: %d bytes stored for %d", e.Path, stored, e.Size)
		}
	}
}

func checkPlan(t *testing.T, steps []placed) {
	links := map[string]bool{}
	dests := map[string]bool{}
	for _, s := range steps {
		if !under(s.Path, paths) || !strings.HasPrefix(s.dest, "/restore/") || dests[s.dest] {
			t.Fatalf("%s planned to %s", s.Path, s.dest)
		}
		dests[s.dest] = true
		if s.Type == "symlink" {
			links[s.Path] = true
			if path.IsAbs(s.Target) || path.Clean(s.Target) != s.Target || !under(path.Join(path.Dir(s.Path), s.Target), paths) {
				t.Fatalf("%s -> %s planned", s.Path, s.Target)
			}
		}
	}
	for _, s := range steps {
		for a := path.Dir(s.Path); a != "/"; a = path.Dir(a) {
			if links[a] {
				t.Fatalf("%s planned below the link %s", s.Path, a)
			}
		}
	}
}

// FuzzSums: whatever the bytes, parsing returns a named refusal or sums
// whose every name is the manifest's or one the writer makes (relative,
// clean, inside the backup folder), every sum a SHA-256, their count
// bounded, and that read the same once written again.
func FuzzSums(f *testing.F) {
	for _, s := range seeds {
		data, err := os.ReadFile(filepath.Join(s.dir, SumsFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  files/etc/%2E%2E/x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := parseSums(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("refusal without a name: %v", err)
			}
			return
		}
		if len(sums) > maxSums {
			t.Fatalf("%d names", len(sums))
		}
		var again bytes.Buffer
		for _, name := range slices.Sorted(maps.Keys(sums)) {
			if !isSum(sums[name]) {
				t.Fatalf("%s: sum %q", name, sums[name])
			}
			if name != ManifestFile && name != ManifestFile+".age" && !validStoredName(name) {
				t.Fatalf("name %q accepted", name)
			}
			if !filepath.IsLocal(name) || path.Clean(name) != name || strings.ContainsAny(name, "\\\x00\n") {
				t.Fatalf("name %q leaves the folder", name)
			}
			fmt.Fprintf(&again, "%s  %s\n", sums[name], name)
		}
		back, err := parseSums(again.Bytes())
		if err != nil || !maps.Equal(back, sums) {
			t.Fatalf("written again, reads %v, %v", back, err)
		}
	})
}
