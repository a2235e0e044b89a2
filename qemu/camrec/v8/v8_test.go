package v8

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/passeur/passeur/qemu/camrec"
)

// TestConvertAndCheck restores a v7 configuration and index into a state
// folder, converts them, and checks the health against segment files.
func TestConvertAndCheck(t *testing.T) {
	state, vol := t.TempDir(), t.TempDir()
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	var segs []camrec.Segment
	for i := 0; i < 5; i++ {
		start := t0.Add(time.Duration(i) * time.Minute)
		p := filepath.Join(vol, camrec.RelPath("cam01", start))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, camrec.Content("cam01", start, 1000, 1), 0o644)
		segs = append(segs, camrec.Segment{Camera: "cam01", Start: start, Path: p, Size: 1000})
	}
	put := func(rel string, write func(*bytes.Buffer)) {
		var b bytes.Buffer
		write(&b)
		p := filepath.Join(state, RestoreDir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b.Bytes(), 0o644)
	}
	put(camrec.ConfigV7File, func(b *bytes.Buffer) {
		camrec.WriteConfigV7(b, camrec.Config{Site: "S", RetentionDays: 7, Cameras: []camrec.Camera{{ID: "cam01", Name: "A", URL: "rtsp://a"}, {ID: "cam02", Name: "B", URL: "rtsp://b"}}})
	})
	put(camrec.IndexV1File, func(b *bytes.Buffer) { camrec.WriteIndexV1(b, segs) })
	for _, name := range EnrolmentFiles {
		put(UpdateDir+"/"+name, func(b *bytes.Buffer) { b.WriteString("the box's " + name + "\n") })
	}

	did, err := Convert(state)
	if err != nil || len(did) != 3 {
		t.Fatalf("Convert = %v, %v", did, err)
	}
	for _, name := range EnrolmentFiles {
		if got, _ := os.ReadFile(filepath.Join(state, UpdateDir, name)); string(got) != "the box's "+name+"\n" {
			t.Errorf("the enrolment's %s taken over: %q", name, got)
		}
	}
	if again, err := Convert(state); err != nil || len(again) != 0 {
		t.Errorf("second Convert = %v, %v; want nothing done", again, err)
	}
	c, idx, err := Load(state)
	if err != nil {
		t.Fatal(err)
	}
	r := Check("8.0.0", c, idx, []string{"b", "a"})
	if r.Cameras != 2 || r.SegmentsIndexed != 5 || r.SegmentsMissing != 0 || r.Bytes != 5000 || r.Volumes[0] != "a" {
		t.Errorf("report = %+v", r)
	}
	os.Remove(segs[2].Path)
	os.WriteFile(segs[3].Path, []byte("short"), 0o644)
	if r := Check("8.0.0", c, idx, nil); r.SegmentsMissing != 2 || r.Bytes != 3000 {
		t.Errorf("after losing two segments: %+v", r)
	}
}

func TestFreshInstall(t *testing.T) {
	c, idx, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r := Check("8.0.0", c, idx, nil); r.Cameras != 0 || r.SegmentsIndexed != 0 || r.Volumes == nil {
		t.Errorf("fresh report = %+v", r)
	}
}
