package v8

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/qemu/camrec"
)

// box is a camrec 7 appliance's recordings on a volume folder, and its
// configuration and v1 index as passeur restores them.
type box struct {
	vol    string
	config camrec.Config
	segs   []camrec.Segment
}

func newBox(t *testing.T) box {
	t.Helper()
	b := box{vol: t.TempDir(), config: camrec.Config{Site: "Quai 3", RetentionDays: 14, Cameras: []camrec.Camera{
		{ID: "cam01", Name: "Entrée", URL: "rtsp://10.0.0.11/s"}, {ID: "cam02", Name: "Parking", URL: "rtsp://10.0.0.12/s"}}}}
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for i := 0; i < 6; i++ {
		cam := b.config.Cameras[i%2].ID
		start := t0.Add(time.Duration(i) * time.Minute)
		p := filepath.Join(b.vol, camrec.RelPath(cam, start))
		os.MkdirAll(filepath.Dir(p), 0o755)
		size := int64(1000 + i)
		if err := os.WriteFile(p, camrec.Content(cam, start, size, 1), 0o644); err != nil {
			t.Fatal(err)
		}
		b.segs = append(b.segs, camrec.Segment{Camera: cam, Start: start, Path: p, Size: size})
	}
	camrec.Sort(b.segs) // the index order
	return b
}

// restoreV7 lays the box's v7 configuration and index in state/restore.
func (b box) restoreV7(t *testing.T, state string) {
	t.Helper()
	var c, x bytes.Buffer
	camrec.WriteConfigV7(&c, b.config)
	camrec.WriteIndexV1(&x, b.segs)
	for rel, data := range map[string][]byte{camrec.ConfigV7File: c.Bytes(), camrec.IndexV1File: x.Bytes()} {
		p := filepath.Join(state, RestoreDir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// want is the box's configuration as camrec 8 reads it.
func (b box) want() Config {
	return Config{Site: b.config.Site, RetentionDays: b.config.RetentionDays, Cameras: b.config.Cameras}
}

// report is the health 8.0.0 gives of the box.
func (b box) report(ver string) camrec.Report {
	r := camrec.Report{Product: "camrec", Version: ver, Cameras: len(b.config.Cameras), SegmentsIndexed: len(b.segs), Volumes: []string{"vol-a"}, OK: true}
	for _, s := range b.segs {
		r.Bytes += s.Size
	}
	return r
}

// files returns every file of the state but the health report, with its
// content.
func files(t *testing.T, state string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if rel, _ := filepath.Rel(state, p); !d.IsDir() && rel != HealthFile {
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		}
		return nil
	})
	return out
}

func boot(t *testing.T, state, ver string) (Health, []string) {
	t.Helper()
	h, did, err := Boot(state, ver, []string{"vol-a"})
	if err != nil {
		t.Fatalf("camrec %s: %v (did %v)", ver, err, did)
	}
	var written Health
	if b, err := os.ReadFile(filepath.Join(state, HealthFile)); err != nil || json.Unmarshal(b, &written) != nil || !reflect.DeepEqual(written, h) {
		t.Errorf("camrec %s: %s holds %+v, want %+v (%v)", ver, HealthFile, written, h, err)
	}
	return h, did
}

// TestReleasesBootInTurn boots a box's state through the releases of
// camrec 8 in the orders a box can take them, from a state 8.0.0 made
// (restored from camrec 7), from camrec 7 restored straight into a later
// release, from a fresh install, and from a camrec 8 box's files restored
// by a migration: each release's health report shows its formats, the
// configuration and the segments are those camrec 7 held, and a second
// boot of any release changes nothing.
func TestReleasesBootInTurn(t *testing.T) {
	b := newBox(t)
	want := map[string]Health{
		"8.0.0": {Report: b.report("8.0.0")},
		"8.1.0": {Report: b.report("8.1.0"), IndexFormat: 3},
		"8.2.0": {Report: b.report("8.2.0"), IndexFormat: 3, ConfigFormat: 3},
	}
	for _, path := range [][]string{
		{"8.0.0", "8.1.0", "8.2.0"},
		{"8.0.0", "8.2.0"},
		{"8.1.0", "8.2.0"},
		{"8.1.0"},
		{"8.2.0"},
	} {
		t.Run(strings.Join(path, "-"), func(t *testing.T) {
			state := t.TempDir()
			b.restoreV7(t, state)
			for i, ver := range path {
				h, did := boot(t, state, ver)
				if !reflect.DeepEqual(h, want[ver]) {
					t.Errorf("camrec %s (boot %d of %v):\n got %+v\nwant %+v", ver, i+1, path, h, want[ver])
				}
				if i == 0 && !slices.ContainsFunc(did, func(d string) bool { return strings.Contains(d, "index v1 -> v2 (6 segments)") }) {
					t.Errorf("camrec %s, first boot after a migration from 7: did %v", ver, did)
				}
				before := files(t, state)
				if again, did := boot(t, state, ver); len(did) != 0 || !reflect.DeepEqual(again, h) || !reflect.DeepEqual(files(t, state), before) {
					t.Errorf("camrec %s booted again: did %v, report %+v, files changed: %v", ver, did, again, !reflect.DeepEqual(files(t, state), before))
				}
			}
			c, idx, err := Load(state)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, b.want()) {
				t.Errorf("configuration after %v: %+v, want %+v", path, c, b.want())
			}
			if len(idx) != len(b.segs) {
				t.Fatalf("index after %v: %d segments, want %d", path, len(idx), len(b.segs))
			}
			for i, e := range idx {
				s := b.segs[i]
				if e.Camera != s.Camera || !e.Start.Equal(s.Start) || e.Path != s.Path || e.Size != s.Size {
					t.Errorf("segment %d after %v: %+v, want %+v", i, path, e, s)
				}
			}
		})
	}

	t.Run("fresh", func(t *testing.T) {
		state := t.TempDir()
		for _, ver := range []string{"8.0.0", "8.1.0", "8.2.0"} {
			h, _ := boot(t, state, ver)
			w := Health{Report: camrec.Report{Product: "camrec", Version: ver, Volumes: []string{"vol-a"}, OK: true}}
			if ver != "8.0.0" {
				w.IndexFormat = 3
			}
			if ver == "8.2.0" {
				w.ConfigFormat = 3
			}
			if !reflect.DeepEqual(h, w) {
				t.Errorf("fresh camrec %s:\n got %+v\nwant %+v", ver, h, w)
			}
		}
	})

	// A camrec 8 box migrated by passeur: its state partition's files
	// restored under restore/, in the formats its release left them in.
	for _, from := range []string{"8.0.0", "8.1.0", "8.2.0"} {
		t.Run("restored-"+from, func(t *testing.T) {
			old := t.TempDir()
			b.restoreV7(t, old)
			boot(t, old, from)
			state := t.TempDir()
			for _, rel := range []string{ConfigFile, IndexFile, IndexV3File} {
				if data, err := os.ReadFile(filepath.Join(old, rel)); err == nil {
					p := filepath.Join(state, RestoreDir, rel)
					os.MkdirAll(filepath.Dir(p), 0o755)
					os.WriteFile(p, data, 0o644)
				}
			}
			h, did := boot(t, state, "8.2.0")
			if !reflect.DeepEqual(h, want["8.2.0"]) {
				t.Errorf("camrec 8.2.0 restored from %s:\n got %+v\nwant %+v", from, h, want["8.2.0"])
			}
			if !slices.ContainsFunc(did, func(d string) bool { return strings.HasPrefix(d, "converted index restored from camrec 8") }) {
				t.Errorf("camrec 8.2.0 restored from %s did %v", from, did)
			}
		})
	}
}

// TestHealthOf800IsUnchanged: 8.0.0's report is, to the byte, the
// camrec.Report it always wrote, whatever formats the state holds; the
// later releases add their fields.
func TestHealthOf800IsUnchanged(t *testing.T) {
	b := newBox(t)
	r := b.report("8.0.0")
	old, _ := json.MarshalIndent(r, "", "  ")
	h, err := HealthOf("8.0.0", Formats{Config: 3, Index: 3}, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.MarshalIndent(h, "", "  "); !bytes.Equal(got, old) {
		t.Errorf("8.0.0's health report\n%s\nwant\n%s", got, old)
	}
	for ver, want := range map[string]string{
		"8.1.0": `"ok":true,"index_format":3}`,
		"8.2.0": `"ok":true,"index_format":3,"config_format":3}`,
		"8.3.1": `"ok":true,"index_format":3,"config_format":3}`,
	} {
		r := b.report(ver)
		h, err := HealthOf(ver, Formats{Config: 3, Index: 3}, r)
		got, _ := json.Marshal(h)
		if err != nil || !strings.HasSuffix(string(got), want) {
			t.Errorf("%s's health report %s (%v), want it to end %s", ver, got, err, want)
		}
		var back camrec.Report // what passeur and the tests read
		if err := json.Unmarshal(got, &back); err != nil || back.Version != ver || back.SegmentsIndexed != r.SegmentsIndexed {
			t.Errorf("%s's health report read as camrec.Report: %+v, %v", ver, back, err)
		}
	}
	if _, err := HealthOf("eight", Formats{}, r); err == nil {
		t.Error("a version that does not parse was taken")
	}
}

// TestIndexToV3 converts 8.0.0's index, and takes up a conversion cut
// between writing segments.v3 and removing index.v2.json.
func TestIndexToV3(t *testing.T) {
	b := newBox(t)
	state := t.TempDir()
	b.restoreV7(t, state)
	if _, err := Convert(state); err != nil {
		t.Fatal(err)
	}
	v2, _ := os.ReadFile(filepath.Join(state, IndexFile))
	_, before, _ := Load(state)
	did, err := IndexToV3(state)
	if err != nil || did != "index v2 -> v3 (6 segments)" {
		t.Fatalf("IndexToV3 = %q, %v", did, err)
	}
	if f, err := Detect(state); err != nil || f != (Formats{Config: 2, Index: 3}) {
		t.Errorf("formats after the step: %+v, %v", f, err)
	}
	v3, _ := os.ReadFile(filepath.Join(state, IndexV3File))
	if !strings.HasPrefix(string(v3), "camrec-index v3\ncam01\t2026-11-01T08:00:00Z\t1000\t") {
		t.Errorf("segments.v3 begins %q", v3[:min(len(v3), 80)])
	}
	_, after, err := Load(state)
	if err != nil || len(after) != len(before) {
		t.Fatalf("index after the step: %d segments, %v", len(after), err)
	}
	for i := range after {
		if after[i].Camera != before[i].Camera || !after[i].Start.Equal(before[i].Start) || after[i].Path != before[i].Path || after[i].Size != before[i].Size {
			t.Errorf("segment %d: %+v, was %+v", i, after[i], before[i])
		}
	}

	// Cut after segments.v3 was written: the v2 index is still there.
	os.WriteFile(filepath.Join(state, IndexFile), v2, 0o644)
	if did, err := IndexToV3(state); err != nil || did != "" {
		t.Errorf("taken up: %q, %v", did, err)
	}
	if _, err := os.Stat(filepath.Join(state, IndexFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the v2 index left beside the v3 one: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(state, IndexV3File)); !bytes.Equal(got, v3) {
		t.Error("segments.v3 rewritten when taken up")
	}

	// A v2 index that does not parse is an error, and stays.
	bad := t.TempDir()
	os.MkdirAll(filepath.Join(bad, "camrec"), 0o755)
	os.WriteFile(filepath.Join(bad, IndexFile), []byte(`[{"camera": "cam01", "si`), 0o644)
	if _, err := IndexToV3(bad); err == nil || !strings.Contains(err.Error(), "index.v2.json") {
		t.Errorf("a truncated v2 index: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bad, IndexV3File)); err == nil {
		t.Error("a v3 index written from a v2 index that does not parse")
	}
}

// TestIndexV3ChecksItself: a v3 index truncated, with a byte changed or
// without its trailer fails to load, unlike 8.0.0's JSON; what it cannot
// hold is refused when written.
func TestIndexV3ChecksItself(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 500, time.FixedZone("CET", 3600))
	idx := []IndexEntry{{Camera: "cam02", Start: t0, Path: "/srv/recordings/a b/seg-00.cr", Size: 7}, {Camera: "cam01", Start: t0, Path: "/srv/x", Size: 0}}
	data, err := MarshalIndexV3(idx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseIndexV3(data)
	if err != nil || len(got) != 2 || got[0].Camera != "cam01" || !got[1].Start.Equal(t0) || got[1].Path != idx[0].Path {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	if empty, _ := MarshalIndexV3(nil); string(empty) != "camrec-index v3\nend 0 "+sha256Hex("camrec-index v3\n")+"\n" {
		t.Errorf("empty index %q", empty)
	}
	flipped := bytes.Replace(data, []byte("\t7\t"), []byte("\t8\t"), 1)
	for name, bad := range map[string][]byte{
		"truncated":      data[:len(data)-20],
		"no trailer":     data[:bytes.LastIndex(data, []byte("end "))],
		"a byte changed": flipped,
		"no header":      data[len("camrec-index v3\n"):],
		"a line added":   bytes.Replace(data, []byte("\nend "), []byte("\ncam03\t2026-11-01T08:00:00Z\t1\t/p\nend "), 1),
	} {
		if _, err := ParseIndexV3(bad); !errors.Is(err, camrec.ErrIndexCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, e := range []IndexEntry{{Camera: "cam\t1", Path: "/p"}, {Camera: "cam01", Path: "/p\nq"}, {Camera: "cam01"}} {
		if _, err := MarshalIndexV3([]IndexEntry{e}); err == nil {
			t.Errorf("%+v written", e)
		}
	}
	// Load reports it by name.
	state := t.TempDir()
	os.MkdirAll(filepath.Join(state, "camrec"), 0o755)
	os.WriteFile(filepath.Join(state, IndexV3File), flipped, 0o644)
	if _, _, err := Load(state); !errors.Is(err, camrec.ErrIndexCorrupt) || !strings.Contains(err.Error(), IndexV3File) {
		t.Errorf("Load of a damaged v3 index: %v", err)
	}
}

// TestConfigToV3 converts 8.0.0's configuration in place; format 3 names
// itself; a format this camrec does not know is an error.
func TestConfigToV3(t *testing.T) {
	b := newBox(t)
	state := t.TempDir()
	b.restoreV7(t, state)
	if _, err := Convert(state); err != nil {
		t.Fatal(err)
	}
	did, err := ConfigToV3(state)
	if err != nil || did != "configuration format 2 -> 3 (2 cameras)" {
		t.Fatalf("ConfigToV3 = %q, %v", did, err)
	}
	raw, _ := os.ReadFile(filepath.Join(state, ConfigFile))
	var v3 map[string]any
	if err := json.Unmarshal(raw, &v3); err != nil || v3["format"] != 3.0 || v3["recording"].(map[string]any)["retention_days"] != 14.0 ||
		v3["cameras"].([]any)[0].(map[string]any)["id"] != "cam01" {
		t.Errorf("configuration format 3:\n%s", raw)
	}
	if c, _, err := Load(state); err != nil || !reflect.DeepEqual(c, b.want()) {
		t.Errorf("configuration read back: %+v, %v", c, err)
	}
	if did, err := ConfigToV3(state); err != nil || did != "" {
		t.Errorf("again: %q, %v", did, err)
	}
	if again, _ := os.ReadFile(filepath.Join(state, ConfigFile)); !bytes.Equal(again, raw) {
		t.Error("configuration rewritten by a second step")
	}
	os.WriteFile(filepath.Join(state, ConfigFile), []byte(`{"format": 4, "site": "x"}`), 0o644)
	if _, err := ConfigToV3(state); err == nil || !strings.Contains(err.Error(), "format 4") {
		t.Errorf("format 4: %v", err)
	}
	if _, _, err := Boot(state, "8.0.0", nil); err == nil {
		t.Error("8.0.0 booted on a configuration of format 4")
	}
}

// TestSteps: every step belongs to a release of camrec.V8Versions, in
// order, and every release after the first brings one.
func TestSteps(t *testing.T) {
	var since []string
	for i, s := range Steps {
		since = append(since, s.Since)
		if i > 0 && version.MustParse(s.Since).Compare(version.MustParse(Steps[i-1].Since)) < 0 {
			t.Errorf("step %q (%s) after %q (%s)", s.Name, s.Since, Steps[i-1].Name, Steps[i-1].Since)
		}
	}
	if !reflect.DeepEqual(since, camrec.V8Versions[1:]) {
		t.Errorf("steps of releases %v, releases after the first %v", since, camrec.V8Versions[1:])
	}
	if did, err := Upgrade(t.TempDir(), "8.0.0"); err != nil || len(did) != 0 {
		t.Errorf("8.0.0 ran steps: %v, %v", did, err)
	}
	if _, err := Upgrade(t.TempDir(), "8.x"); err == nil {
		t.Error("a version that does not parse ran the steps")
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
