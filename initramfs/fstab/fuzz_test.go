package fstab

import (
	"bytes"
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// seeds returns the files of testdata matching pattern.
func seeds(f *testing.F, pattern string) [][]byte {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", pattern))
	if len(files) == 0 {
		f.Fatalf("no testdata/%s", pattern)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// checkField fails unless s, written as a field, is one field of no
// control byte, space or '#', and reads back as s.
func checkField(t *testing.T, s string) {
	t.Helper()
	if strings.IndexByte(s, 0) >= 0 {
		return
	}
	w := escape(s)
	if strings.ContainsFunc(w, func(r rune) bool { return r < 0x21 || r == '#' || r == 0x7F }) {
		t.Fatalf("escape(%q) = %q", s, w)
	}
	if back := unescape(w); back != s {
		t.Fatalf("unescape(escape(%q)) = %q", s, back)
	}
}

// FuzzParse parses an fstab, seeded with real ones: within the bounds, it
// writes back to lines that parse to the same entries, and every field
// (and the input itself, as one field) survives escape and unescape.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f, "*.fstab") {
		f.Add(s)
	}
	f.Add([]byte("UUID=1 /srv/a\\012b\\011c\\040d\\134e ext4 defaults 0 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkField(t, string(data))
		es, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(es) > maxEntries {
			t.Fatalf("%d entries", len(es))
		}
		for _, e := range es {
			for _, s := range []string{e.Spec, e.Mountpoint, e.Type, e.Options} {
				checkField(t, s)
			}
		}
		var b bytes.Buffer
		if err := Write(&b, es); err != nil {
			t.Fatalf("Write(Parse(data)) = %v", err)
		}
		if n := strings.Count(b.String(), "\n"); n != len(es) {
			t.Fatalf("%d entries written on %d lines: %q", len(es), n, b.String())
		}
		back, err := Parse(&b)
		if err != nil || len(back) != len(es) || len(es) > 0 && !reflect.DeepEqual(back, es) {
			t.Fatalf("Parse(Write(%+v)) = %+v, %v", es, back, err)
		}
	})
}

// FuzzParseMountUnit parses a mount unit, seeded with a real one: what it
// finds has a device and a mount point, and written in an fstab (unless
// it holds a NUL byte) reads back the same.
func FuzzParseMountUnit(f *testing.F) {
	for _, s := range seeds(f, "*.mount") {
		f.Add(s)
	}
	f.Add([]byte("[Mount]\nWhat=LABEL=rec a\nWhere=/srv/rec\tb\\040\x1b[2J\nType=ext4\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseMountUnit(bytes.NewReader(data))
		if err != nil {
			return
		}
		if e.Spec == "" || e.Mountpoint == "" {
			t.Fatalf("ParseMountUnit = %+v", e)
		}
		var b bytes.Buffer
		if err := Write(&b, []Entry{e}); err != nil {
			if !errors.Is(err, ErrInvalidEntry) || !strings.Contains(e.Spec+e.Mountpoint+e.Type+e.Options, "\x00") {
				t.Fatalf("Write(%+v) = %v", e, err)
			}
			return
		}
		want := e
		want.Type, want.Options = cmp.Or(e.Type, "auto"), cmp.Or(e.Options, "defaults")
		back, err := Parse(&b)
		if err != nil || len(back) != 1 || back[0] != want {
			t.Fatalf("%+v written as %q reads back as %+v, %v", e, b.String(), back, err)
		}
	})
}

// TestRealFstabs reads the seeds as the old systems meant them.
func TestRealFstabs(t *testing.T) {
	for name, want := range map[string][]Entry{
		"debian.fstab": {
			{"UUID=0a3407de-014b-458b-b5c1-848e92a327a3", "/", "ext4", "errors=remount-ro", 0, 1},
			{"UUID=8f1c6f2e-7a47-4a61-9f5e-2b7f3f6c1d20", "/home", "ext4", "defaults", 0, 2},
			{"UUID=b9d8a5c4-3c2e-4d1f-8e7a-6f5b4c3d2e1f", "none", "swap", "sw", 0, 0},
			{"/dev/sr0", "/media/cdrom0", "udf,iso9660", "user,noauto", 0, 0},
		},
		"raspios.fstab": {
			{"proc", "/proc", "proc", "defaults", 0, 0},
			{"PARTUUID=4e639091-01", "/boot/firmware", "vfat", "defaults", 0, 2},
			{"PARTUUID=4e639091-02", "/", "ext4", "defaults,noatime", 0, 1},
		},
		"camrec7.fstab": {
			{"UUID=3c1e0b52-7d0a-4f44-9a53-5b2a6f2d0001", "/", "ext4", "errors=remount-ro", 0, 1},
			{"UUID=3c1e0b52-7d0a-4f44-9a53-5b2a6f2d0002", "/srv/recordings/local", "ext4", "defaults,nofail", 0, 2},
			{"LABEL=rec-b", "/srv/recordings/d1", "ext4", "defaults,nofail", 0, 2},
			{"UUID=3c1e0b52-7d0a-4f44-9a53-5b2a6f2d0003", "/srv/recordings/d2", "xfs", "defaults,nofail", 0, 2},
			{"LABEL=My Videos", "/srv/My Videos", "xfs", "defaults,nofail", 0, 0},
		},
	} {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(f)
		f.Close()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Parse = %+v, %v\nwant %+v", name, got, err, want)
		}
	}
	b, _ := os.ReadFile("testdata/srv-recordings-nas.mount")
	e, err := ParseMountUnit(bytes.NewReader(b))
	if want := (Entry{"/dev/disk/by-uuid/5a5a0b52-7d0a-4f44-9a53-5b2a6f2d0004", "/srv/recordings/nas", "ext4", "noatime,nofail", 0, 0}); err != nil || e != want {
		t.Errorf("ParseMountUnit = %+v, %v, want %+v", e, err, want)
	}
}
