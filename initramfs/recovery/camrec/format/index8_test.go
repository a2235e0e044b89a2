package format

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestIndexV3(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	segs := []Segment{
		{Camera: "cam02", Start: t0, Size: 10, Path: "/srv/recordings/d1/cam02/a.cr"},
		{Camera: "cam01", Start: t0.Add(time.Minute), Size: 20, Path: "/srv/recordings/d1/cam01/b.cr"},
	}
	data, err := MarshalIndexV3(segs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseIndexV3(data)
	want := []Segment{segs[1], segs[0]} // index order: camera, start
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseIndexV3 = %+v, %v; want %+v", got, err, want)
	}
	for name, bad := range map[string][]byte{
		"truncated":        data[:len(data)-10],
		"no header":        data[1:],
		"a size changed":   bytes.Replace(data, []byte("\t20\t"), []byte("\t21\t"), 1),
		"a line dropped":   bytes.Replace(data, []byte("cam01\t"), []byte("#"), 1),
		"an empty camera":  bytes.Replace(data, []byte("cam01\t"), []byte("\t"), 1),
		"a negative size":  bytes.Replace(data, []byte("\t20\t"), []byte("\t-20\t"), 1),
		"only the header":  []byte("camrec-index v3\n"),
		"empty":            nil,
		"trailer repeated": append(append([]byte{}, data...), data[bytes.LastIndex(data[:len(data)-1], []byte("\n"))+1:]...),
	} {
		if _, err := ParseIndexV3(bad); !errors.Is(err, ErrIndexCorrupt) {
			t.Errorf("%s: ParseIndexV3 = %v, want %v", name, err, ErrIndexCorrupt)
		}
	}
	if _, err := MarshalIndexV3([]Segment{{Camera: "a\tb", Start: t0, Path: "/p"}}); err == nil {
		t.Error("MarshalIndexV3 wrote a camera with a tab")
	}
}

func TestIndexV2(t *testing.T) {
	good := `[{"camera": "cam01", "start": "2026-11-01T08:00:00Z", "path": "/srv/recordings/d1/x.cr", "size": 5}]`
	segs, err := ParseIndexV2([]byte(good))
	if err != nil || len(segs) != 1 || segs[0].Size != 5 || segs[0].Camera != "cam01" {
		t.Fatalf("ParseIndexV2 = %+v, %v", segs, err)
	}
	if segs, err := ParseIndexV2([]byte(" []\n")); err != nil || len(segs) != 0 {
		t.Errorf("an empty index: %+v, %v", segs, err)
	}
	for name, bad := range map[string]string{
		"null":          "null",
		"an object":     `{"camera": "cam01"}`,
		"trailing ]":    good + "]",
		"two arrays":    good + good,
		"unknown field": `[{"camera": "cam01", "start": "2026-11-01T08:00:00Z", "path": "/p", "size": 5, "x": 1}]`,
		"no start":      `[{"camera": "cam01", "path": "/p", "size": 5}]`,
		"no camera":     `[{"start": "2026-11-01T08:00:00Z", "path": "/p", "size": 5}]`,
		"negative size": `[{"camera": "cam01", "start": "2026-11-01T08:00:00Z", "path": "/p", "size": -1}]`,
		"truncated":     good[:len(good)-3],
	} {
		if _, err := ParseIndexV2([]byte(bad)); !errors.Is(err, ErrIndexCorrupt) {
			t.Errorf("%s: ParseIndexV2 = %v, want %v", name, err, ErrIndexCorrupt)
		}
	}
}
