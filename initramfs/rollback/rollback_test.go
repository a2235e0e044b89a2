package rollback

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// disk makes a disk image of size bytes: pseudo-random bytes with long
// runs of zeros, as partitions hold.
func disk(t *testing.T, size int64, seed int64) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data[:size/3])
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	return f, data
}

// TestSaveRestore saves regions (one over several pieces), overwrites
// them, and puts them back: the disk is byte for byte what it was, the
// bytes outside the regions never written.
func TestSaveRestore(t *testing.T) {
	const size = 3*PieceSize + 5<<20
	f, orig := disk(t, size, 1)
	regions := []Region{{1 << 20, 2*PieceSize + 123<<10}, {0, 512}, {size - 16896, 16896}}
	dir := filepath.Join(t.TempDir(), "rollback")
	var progress int64
	m, err := Save(f, size, regions, dir, func(n int64) { progress = n })
	if err != nil {
		t.Fatal(err)
	}
	if progress != Size(regions) || m.Bytes() != Size(regions) || len(m.Pieces) != 5 {
		t.Fatalf("saved %d bytes in %d pieces, progress %d, want %d", m.Bytes(), len(m.Pieces), progress, Size(regions))
	}
	junk := bytes.Repeat([]byte{0xA5}, size)
	for _, r := range regions {
		f.WriteAt(junk[:r.Length], r.Offset)
	}
	// A byte outside the regions changed by someone else stays as it is.
	f.WriteAt([]byte{0x42}, size-17000)
	loaded, err := Load(dir, size)
	if err != nil {
		t.Fatal(err)
	}
	var put []int
	if err := Restore(f, f.Sync, loaded, dir, nil, func(i int, _ Piece) error { put = append(put, i); return nil }); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	f.ReadAt(got, 0)
	orig[size-17000] = 0x42
	if !bytes.Equal(got, orig) || len(put) != 5 {
		t.Errorf("restored disk differs from the original (%d pieces put back)", len(put))
	}
	// Taken up after a cut: pieces already back are skipped.
	put = nil
	Restore(f, f.Sync, loaded, dir, func(i int) bool { return i < 3 }, func(i int, _ Piece) error { put = append(put, i); return nil })
	if len(put) != 2 || put[0] != 3 {
		t.Errorf("pieces put back after skipping 3: %v", put)
	}
}

// TestLoadRefuses: nothing read back from the media reaches the disk
// unchecked.
func TestLoadRefuses(t *testing.T) {
	const size = 8 << 20
	f, _ := disk(t, size, 2)
	good := filepath.Join(t.TempDir(), "good")
	if _, err := Save(f, size, []Region{{1 << 20, 2 << 20}, {0, 512}}, good, nil); err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, change func(dir string, m *Manifest)) string {
		dir := filepath.Join(t.TempDir(), "save")
		os.MkdirAll(dir, 0o755)
		names, _ := filepath.Glob(filepath.Join(good, "*"))
		for _, n := range names {
			data, _ := os.ReadFile(n)
			os.WriteFile(filepath.Join(dir, filepath.Base(n)), data, 0o644)
		}
		var m Manifest
		data, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
		json.Unmarshal(data, &m)
		change(dir, &m)
		data, _ = json.Marshal(m)
		os.WriteFile(filepath.Join(dir, ManifestFile), data, 0o644)
		return dir
	}
	for name, change := range map[string]func(string, *Manifest){
		"flipped piece": func(dir string, m *Manifest) {
			p := filepath.Join(dir, m.Pieces[0].File)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 1
			os.WriteFile(p, data, 0o644)
		},
		"piece out of the folder": func(_ string, m *Manifest) { m.Pieces[0].File = "../piece-0000.zst" },
		"other disk size":         func(_ string, m *Manifest) { m.DiskSize++ },
		"past the disk":           func(_ string, m *Manifest) { m.Pieces[1].Offset = size - 256 },
		"overlapping pieces":      func(_ string, m *Manifest) { m.Pieces[1].Offset = 1<<20 + 4096 },
		"another piece's file": func(_ string, m *Manifest) {
			m.Pieces[0].StoredSHA256, m.Pieces[0].StoredSize = m.Pieces[1].StoredSHA256, m.Pieces[1].StoredSize
			m.Pieces[0].File = m.Pieces[1].File
		},
		"flipped byte behind a good hash": func(dir string, m *Manifest) {
			// The file changed and its hash with it: zstd's checksum and
			// the length still refuse what does not decompress as saved.
			p := filepath.Join(dir, m.Pieces[0].File)
			data, _ := os.ReadFile(p)
			data[len(data)/3] ^= 1 // in the random bytes, stored as they are
			os.WriteFile(p, data, 0o644)
			m.Pieces[0].StoredSHA256 = sum(data)
		},
		"huge piece":  func(_ string, m *Manifest) { m.Pieces[0].Length = 1 << 40 },
		"no manifest": func(dir string, _ *Manifest) {},
	} {
		dir := edit(t, change)
		if name == "no manifest" {
			os.Remove(filepath.Join(dir, ManifestFile))
		}
		if _, err := Load(dir, size); !errors.Is(err, ErrBadSave) {
			t.Errorf("%s: Load = %v, want ErrBadSave", name, err)
		}
	}
	m, err := Load(good, size)
	if err != nil {
		t.Fatalf("the good save: %v", err)
	}
	if err := m.Tiles([]Region{{1 << 20, 2 << 20}, {0, 512}}); err != nil {
		t.Errorf("Tiles of the saved regions: %v", err)
	}
	for _, other := range [][]Region{{{1 << 20, 2 << 20}}, {{0, 512}, {1 << 20, 2 << 20}}, {{1 << 20, 2<<20 + 512}, {0, 512}}} {
		if m.Tiles(other) == nil {
			t.Errorf("Tiles(%v) accepted a save of other regions", other)
		}
	}
}
