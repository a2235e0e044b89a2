package camrec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/initramfs/recovery"
	"github.com/passeur/passeur/initramfs/recovery/camrec/format"
)

// recordings writes n segments per camera under a volume folder and
// returns them.
func recordings(t testing.TB, dir, mount string, cams []string, n int, size int64) []format.Segment {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var segs []format.Segment
	for _, cam := range cams {
		for k := range n {
			st := t0.Add(time.Duration(k) * format.SegmentDuration)
			rel := format.RelPath(cam, st)
			p := filepath.Join(dir, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, format.Content(cam, st, size, 1), 0o644); err != nil {
				t.Fatal(err)
			}
			segs = append(segs, format.Segment{Camera: cam, Start: st, Path: mount + "/" + rel, Size: size})
		}
	}
	return segs
}

func TestRebuildEqualsOriginal(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	segs := recordings(t, d1, "/srv/recordings/d1", []string{"cam01", "cam02"}, 70, 300)
	segs = append(segs, recordings(t, d2, "/srv/recordings/d2", []string{"cam03"}, 30, 200)...)
	var orig bytes.Buffer
	format.WriteIndexV1(&orig, segs)

	// Strays: a name that does not parse, a header that lies, a folder
	// the filesystem keeps.
	os.WriteFile(filepath.Join(d1, "cam01/2026-11-01/08/notes.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(d2, "cam03/2026-11-01/08/seg-99.cr"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(d2, "cam09/2026-11-02/10"), 0o755)
	os.WriteFile(filepath.Join(d2, "cam09/2026-11-02/10/seg-00.cr"), []byte("CAMREC-SEG1 cam01 1\n"), 0o644)
	os.MkdirAll(filepath.Join(d1, "lost+found"), 0o700)

	ix, err := recovery.For("camrec")
	if err != nil {
		t.Fatal(err)
	}
	files, rep, err := ix.Rebuild([]recovery.Volume{
		{Mountpoint: "/srv/recordings/d1", FS: os.DirFS(d1)},
		{Mountpoint: "/srv/recordings/d2", FS: os.DirFS(d2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != format.IndexV1File {
		t.Fatalf("files: %+v", files)
	}
	if !bytes.Equal(files[0].Data, orig.Bytes()) {
		t.Errorf("rebuilt index differs from the original:\n%s", diffLines(orig.String(), string(files[0].Data)))
	}
	if rep.Cameras != 3 || rep.Segments != 170 || rep.Bytes != 140*300+30*200 || rep.Volumes != 2 {
		t.Errorf("report: %+v", rep)
	}
	if want := time.Date(2026, 11, 1, 9, 10, 0, 0, time.UTC); !rep.Last.Equal(want) || !rep.First.Equal(time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("span %v – %v", rep.First, rep.Last)
	}
	var rejected []string
	for _, r := range rep.Rejected {
		rejected = append(rejected, r.Path)
	}
	want := []string{"/srv/recordings/d1/cam01/2026-11-01/08/notes.txt", "/srv/recordings/d2/cam03/2026-11-01/08/seg-99.cr", "/srv/recordings/d2/cam09/2026-11-02/10/seg-00.cr"}
	if strings.Join(rejected, " ") != strings.Join(want, " ") {
		t.Errorf("rejected %v, want %v", rejected, want)
	}
}

func diffLines(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d: %q vs %q", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(la), len(lb))
}

func TestCheckFindsMissingAndCorrupt(t *testing.T) {
	root := t.TempDir()
	ix := Indexer{}
	if err := ix.Check(os.DirFS(root)); !errors.Is(err, recovery.ErrMissing) {
		t.Errorf("no index: %v", err)
	}
	var b bytes.Buffer
	format.WriteIndexV1(&b, recordings(t, t.TempDir(), "/srv/recordings/d1", []string{"cam01"}, 5, 100))
	p := filepath.Join(root, format.IndexV1File)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, b.Bytes(), 0o644)
	if err := ix.Check(os.DirFS(root)); err != nil {
		t.Fatalf("intact index: %v", err)
	}
	flipped := bytes.Clone(b.Bytes())
	flipped[30] ^= 0x01
	truncated := b.Bytes()[:b.Len()-20]
	for name, data := range map[string][]byte{"flipped": flipped, "truncated": truncated, "empty": nil} {
		os.WriteFile(p, data, 0o644)
		if err := ix.Check(os.DirFS(root)); !errors.Is(err, recovery.ErrCorrupt) {
			t.Errorf("%s index: %v", name, err)
		}
	}
	if _, err := recovery.For("othercam"); !errors.Is(err, recovery.ErrNoIndexer) {
		t.Errorf("unregistered product: %v", err)
	}
}

// TestCheckCamrec8: a camrec 8 system's files (its state laid over its
// root) hold its index in v3 or v2 on the state; the newest one present is
// the one checked, and a damaged one is corrupt even with an older index
// beside it.
func TestCheckCamrec8(t *testing.T) {
	segs := recordings(t, t.TempDir(), "/srv/recordings/d1", []string{"cam01", "cam02"}, 3, 100)
	v3, err := format.MarshalIndexV3(segs)
	if err != nil {
		t.Fatal(err)
	}
	v2 := []byte(`[{"camera":"cam01","start":"2026-01-01T00:00:00Z","path":"/srv/recordings/d1/cam01/2026-01-01/00/seg-00.cr","size":100}]`)
	var v1 bytes.Buffer
	format.WriteIndexV1(&v1, segs)
	ix := Indexer{}
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  error
	}{
		{"v3", map[string][]byte{format.IndexV3File: v3}, nil},
		{"v2", map[string][]byte{format.IndexV2File: v2}, nil},
		{"v3 beside a v2 not yet removed", map[string][]byte{format.IndexV3File: v3, format.IndexV2File: v2}, nil},
		{"v3 truncated, v1 intact", map[string][]byte{format.IndexV3File: v3[:len(v3)-10], format.IndexV1File: v1.Bytes()}, recovery.ErrCorrupt},
		{"v2 not JSON", map[string][]byte{format.IndexV2File: v2[:20]}, recovery.ErrCorrupt},
		{"v2 with an unknown field", map[string][]byte{format.IndexV2File: []byte(`[{"camera":"c","path":"/p","size":1,"x":1}]`)}, recovery.ErrCorrupt},
		{"none", map[string][]byte{"camrec/config.json": []byte("{}")}, recovery.ErrMissing},
	} {
		root := t.TempDir()
		for name, data := range tc.files {
			p := filepath.Join(root, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, data, 0o644)
		}
		err := ix.Check(os.DirFS(root))
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
		// A corrupt index is named, to be kept as damaged, not restored.
		var corrupt *recovery.CorruptError
		if tc.want == recovery.ErrCorrupt && (!errors.As(err, &corrupt) || tc.files[strings.TrimPrefix(corrupt.Path, "/")] == nil) {
			t.Errorf("%s: Check = %v, want a CorruptError naming the file", tc.name, err)
		}
	}
}

// BenchmarkRebuild100k rebuilds the index of 100 000 segments and, in the
// same run, times a plain `find` over them; the ratio is what counts.
func BenchmarkRebuild100k(b *testing.B) {
	dir := b.TempDir()
	var cams []string
	for i := range 50 {
		cams = append(cams, fmt.Sprintf("cam%02d", i))
	}
	recordings(b, dir, "/srv/recordings/d1", cams, 2000, 64)
	vols := []recovery.Volume{{Mountpoint: "/srv/recordings/d1", FS: os.DirFS(dir)}}
	var rebuild, find time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		_, rep, err := Indexer{}.Rebuild(vols)
		rebuild += time.Since(t0)
		if err != nil || rep.Segments != 100000 {
			b.Fatalf("%v, %d segments", err, rep.Segments)
		}
		t0 = time.Now()
		out, err := exec.Command("find", dir, "-type", "f").Output()
		find += time.Since(t0)
		if err != nil || bytes.Count(out, []byte("\n")) != 100000 {
			b.Fatalf("find: %v", err)
		}
	}
	b.ReportMetric(rebuild.Seconds()/float64(b.N), "rebuild-s")
	b.ReportMetric(find.Seconds()/float64(b.N), "find-s")
	b.ReportMetric(rebuild.Seconds()/find.Seconds(), "ratio")
}
