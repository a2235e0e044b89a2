package format

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRelPath(t *testing.T) {
	start := time.Date(2026, 11, 1, 9, 7, 0, 0, time.UTC)
	rel := RelPath("cam02", start)
	if rel != "cam02/2026-11-01/09/seg-07.cr" {
		t.Errorf("RelPath = %s", rel)
	}
	cam, got, err := ParseRelPath(rel)
	if err != nil || cam != "cam02" || !got.Equal(start) {
		t.Errorf("ParseRelPath(%s) = %s %v %v", rel, cam, got, err)
	}
	for _, bad := range []string{"cam02/2026-11-01/09/clip.mp4", "cam02/2026-13-01/09/seg-07.cr", "cam02/2026-11-01/24/seg-07.cr",
		"cam02/2026-11-01/9/seg-07.cr", "2026-11-01/09/seg-07.cr", "cam02/2026-11-01/09/seg-61.cr"} {
		if _, _, err := ParseRelPath(bad); err == nil {
			t.Errorf("ParseRelPath(%s): want an error", bad)
		}
	}
}

func TestIndexV1(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	segs := []Segment{
		{"cam02", t0, "/srv/recordings/d1/" + RelPath("cam02", t0), 100},
		{"cam01", t0.Add(time.Minute), "/srv/recordings/d1/" + RelPath("cam01", t0.Add(time.Minute)), 200},
		{"cam01", t0, "/srv/recordings/d1/" + RelPath("cam01", t0), 300},
	}
	var b bytes.Buffer
	if err := WriteIndexV1(&b, segs); err != nil {
		t.Fatal(err)
	}
	got, err := ParseIndexV1(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	Sort(segs)
	if len(got) != 3 || got[0] != segs[0] || got[2] != segs[2] || got[0].Camera != "cam01" {
		t.Errorf("round trip = %+v", got)
	}
	data := b.Bytes()
	for name, bad := range map[string][]byte{
		"truncated":    data[:len(data)-20],
		"cut at line":  data[:bytes.IndexByte(data[20:], '\n')+21],
		"flipped byte": append(append(bytes.Clone(data[:30]), data[30]^1), data[31:]...),
		"no header":    data[5:],
		"empty":        nil,
	} {
		if _, err := ParseIndexV1(bytes.NewReader(bad)); !errors.Is(err, ErrIndexCorrupt) {
			t.Errorf("%s index: err = %v, want ErrIndexCorrupt", name, err)
		}
	}
}

func TestConfigV7(t *testing.T) {
	c := Config{Site: "Entrepôt Nord", RetentionDays: 30, Cameras: []Camera{{"cam01", "Quai 1", "rtsp://10.1.1.11/s1"}, {"cam02", "Quai = 2", "rtsp://x"}}}
	var b bytes.Buffer
	WriteConfigV7(&b, c)
	got, err := ParseConfigV7(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Site != c.Site || got.RetentionDays != 30 || len(got.Cameras) != 2 || got.Cameras[1] != c.Cameras[1] {
		t.Errorf("round trip = %+v", got)
	}
	if _, err := ParseConfigV7(strings.NewReader("[recorder]\nsite\n")); err == nil {
		t.Error("a line without = : want an error")
	}
}

// FuzzParseIndexV1: the rescue reads the old system's index to check it;
// whatever it holds, the parser never panics, and what it accepts
// re-encodes to an index that parses the same.
func FuzzParseIndexV1(f *testing.F) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var real bytes.Buffer
	WriteIndexV1(&real, []Segment{{Camera: "cam01", Start: t0, Size: 1 << 20, Path: "/srv/nvr/cam01/2026-11-01/08/seg-00.cr"},
		{Camera: "cam02", Start: t0.Add(time.Minute), Size: 3, Path: "/srv/nvr-2/cam02/2026-11-01/08/seg-01.cr"}})
	f.Add(real.Bytes())
	f.Add(real.Bytes()[:real.Len()-10])
	f.Add([]byte("camrec-index v1\nend 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		segs, err := ParseIndexV1(bytes.NewReader(data))
		if err != nil {
			return
		}
		var again bytes.Buffer
		if err := WriteIndexV1(&again, segs); err != nil {
			return // fields the writer cannot hold (a tab in a name): not re-encodable, still parsed without harm
		}
		back, err := ParseIndexV1(&again)
		if err != nil || len(back) != len(segs) {
			t.Fatalf("re-encoded: %d segments, %v; was %d", len(back), err, len(segs))
		}
	})
}

// FuzzParseRelPath: a recording's path on a data volume is read back as
// camera and start, or refused; what is accepted names itself again.
func FuzzParseRelPath(f *testing.F) {
	for _, s := range []string{"cam02/2026-11-01/09/seg-07.cr", "cam02/2026-11-01/9/seg-07.cr", "../../etc/2026-11-01/09/seg-07.cr", "a/b/c/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		cam, start, err := ParseRelPath(rel)
		if err != nil {
			return
		}
		if cam == "" || strings.Contains(cam, "/") {
			t.Fatalf("%q: camera %q", rel, cam)
		}
		cam2, start2, err := ParseRelPath(RelPath(cam, start))
		if err != nil || cam2 != cam || !start2.Equal(start) {
			t.Fatalf("%q: names itself as %q %v %v", rel, cam2, start2, err)
		}
	})
}
