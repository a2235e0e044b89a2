package repoclient

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
)

// TestFold: what other disks of a box remember is taken only where it
// verifies from the baked root and is newer: a root that chains, a
// timestamp and snapshot of a higher version; a version forged ahead, a
// root that does not chain, an older timestamp are passed over; the newer
// seen.json is taken; the folders are removed.
func TestFold(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0")
	box := t.TempDir()
	if _, err := openBox(v, box, v.Now); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(filepath.Join(box, "metadata", "timestamp.json"))
	// The vendor rotates the timestamp key (root 2) and refreshes; one
	// disk of the box saw it.
	v.Now = v.Now.Add(time.Hour)
	v.Edit(func(r *editor.Repo) error { return r.RotateKey("timestamp") })
	disk := t.TempDir()
	if _, err := openBox(v, disk, v.Now); err != nil {
		t.Fatal(err)
	}
	newer, _ := os.ReadFile(filepath.Join(disk, "metadata", "timestamp.json"))
	root2, _ := os.ReadFile(filepath.Join(disk, "roots", "2.root.json"))

	state := t.TempDir()
	os.CopyFS(state, os.DirFS(box))
	put := func(folder, name string, data []byte) {
		p := filepath.Join(state, Elsewhere, folder, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	}
	os.CopyFS(filepath.Join(state, Elsewhere, "vda3"), os.DirFS(disk))
	put("vdb", "metadata/timestamp.json", bytes.Replace(newer, []byte(`"version": `), []byte(`"version": 9999`), 1))
	put("vdb", "roots/3.root.json", bytes.Replace(root2, []byte(`"version": 2`), []byte(`"version": 3`), 1))
	put("vdc", "metadata/timestamp.json", old)

	took, err := Fold(v.Root, state)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(took, "; ")
	for _, w := range []string{"vda3: roots/2.root.json", "vda3: metadata/timestamp.json v"} {
		if !strings.Contains(got, w) {
			t.Errorf("took %q, want %q in it", got, w)
		}
	}
	if strings.Contains(got, "vdb") || strings.Contains(got, "vdc") {
		t.Errorf("took %q: forged or older files taken", got)
	}
	if data, _ := os.ReadFile(filepath.Join(state, "metadata", "timestamp.json")); !bytes.Equal(data, newer) {
		t.Error("the newer genuine timestamp was not taken")
	}
	if _, err := os.Stat(filepath.Join(state, "roots", "3.root.json")); err == nil {
		t.Error("a root that does not chain was taken")
	}
	diskSeen, _ := os.ReadFile(filepath.Join(disk, SeenFile))
	if data, _ := os.ReadFile(filepath.Join(state, SeenFile)); !bytes.Equal(data, diskSeen) || !strings.Contains(got, "vda3: seen.json") {
		t.Error("the disk's newer seen time was not taken")
	}
	if _, err := os.Stat(filepath.Join(state, Elsewhere)); err == nil {
		t.Error("the folders from elsewhere were left")
	}
	// The folded state is a box's state: it opens.
	if _, err := openBox(v, state, v.Now); err != nil {
		t.Errorf("the folded state: %v", err)
	}
}
