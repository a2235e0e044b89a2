package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/version"
)

func example(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseExample(t *testing.T) {
	m, err := Parse(example(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.Product != "camrec" || m.Version.String() != "8.0.0" || len(m.Layout.Partitions) != 4 {
		t.Errorf("manifest = %+v", m)
	}
	if !m.MigrateFrom.Contains(version.MustParse("7.14.0.3")) || m.MigrateFrom.Contains(version.MustParse("7.12")) {
		t.Error("migrate_from range not honoured")
	}
	if g, _ := m.Layout.Partitions[0].TypeGUID(); g != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Errorf("esp type GUID = %s", g)
	}
	// Canonical form: marshal, parse, marshal gives the same bytes.
	b1, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(b1)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := m2.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Errorf("marshal is not canonical:\n%s\n%s", b1, b2)
	}
}

// mutate applies a textual change to the example manifest.
func mutate(t *testing.T, old, new string) []byte {
	t.Helper()
	b := example(t)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("example has no %q", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     error
	}{
		{"missing product", `"product": "camrec",`, ``, ErrMissingField},
		{"missing version", `"version": "8.0.0",`, ``, ErrMissingField},
		{"bad version", `"version": "8.0.0"`, `"version": "eight"`, version.ErrSyntax},
		{"bad range", `">=7.14.0.2 <8"`, `"from 7.14"`, version.ErrSyntax},
		{"unknown role", `"role": "empty"`, `"role": "wipe"`, ErrUnknownRole},
		{"unknown artifact", `"artifact": "root"`, `"artifact": "rootfs"`, ErrUnknownArtifact},
		{"rest not last", `"size": "min:128MiB"`, `"size": "rest"`, ErrLayout},
		{"artifact larger than partition", `"size": "64MiB", "role": "artifact"`, `"size": "32MiB", "role": "artifact"`, ErrLayout},
		{"bad size", `"size": "64MiB"`, `"size": "64MB"`, ErrLayout},
		{"unknown type", `"type": "esp"`, `"type": "efi"`, ErrLayout},
		{"bad partition uuid", `"type": "esp",`, `"type": "esp", "uuid": "not-a-guid",`, ErrLayout},
		{"unknown field", `"arch": "amd64",`, `"arch": "amd64", "arhc": "x",`, ErrSyntax},
		{"bad hash", `"sha256": "1111`, `"sha256": "XX11`, ErrSyntax},
		{"escaping file", `"file": "esp.img.zst"`, `"file": "../esp.img.zst"`, ErrSyntax},
		{"relative config", `"config": ["/etc/camrec"]`, `"config": ["etc/camrec"]`, ErrSyntax},
		{"no version group", `"^camrec ([0-9][0-9.]*)"`, `"^camrec"`, ErrSyntax},
		{"wrong format", `"format": 1`, `"format": 2`, ErrSyntax},
		{"keep without label", `, "keep_label": "camrec-data*"`, ``, ErrMissingField},
		{"trailing data", "\"min_media_free\": 1073741824\n}", "\"min_media_free\": 1073741824\n}{}", ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(mutate(t, tc.old, tc.new))
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	m, err := Parse(example(t))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := m.Layout.Place(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ start, size int64 }{
		{1 << 20, 64 << 20}, {65 << 20, 256 << 20}, {321 << 20, 128 << 20}, {449 << 20, (1 << 30) - (449 << 20) - (1 << 20)},
	}
	for i, e := range ext {
		if e.Start != want[i].start || e.Bytes != want[i].size {
			t.Errorf("%s at %d size %d, want %d size %d", e.Name, e.Start, e.Bytes, want[i].start, want[i].size)
		}
		if e.Start%Alignment != 0 {
			t.Errorf("%s not aligned", e.Name)
		}
	}
	if _, err := m.Layout.Place(400 << 20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Place on a 400 MiB disk = %v, want ErrTooLarge", err)
	}
	min := m.Layout.MinDiskSize()
	if _, err := m.Layout.Place(min); err != nil {
		t.Errorf("Place on MinDiskSize (%d): %v", min, err)
	}
}

func TestSize(t *testing.T) {
	for s, want := range map[string]Size{"rest": {Rest: true}, "512MiB": {Bytes: 512 << 20}, "min:1GiB": {Bytes: 1 << 30, Min: true}, "4096B": {Bytes: 4096}} {
		got, err := ParseSize(s)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %+v, %v", s, got, err)
		}
		if got.String() != strings.Replace(s, "4096B", "4KiB", 1) {
			t.Errorf("%+v renders as %q", got, got.String())
		}
	}
	for _, s := range []string{"", "12", "1.5GiB", "-1MiB", "min:", "99999999999TiB"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q): want an error", s)
		}
	}
}

// FuzzParse checks that no input makes Parse panic, and that what it
// accepts survives a canonical round trip.
func FuzzParse(f *testing.F) {
	f.Add(example(f))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1,"layout":{"partitions":[{"size":"rest"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("accepted manifest does not re-parse: %v\n%s", err, b)
		}
	})
}

func TestProfile(t *testing.T) {
	data, err := os.ReadFile("testdata/camrec-8.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(m.Profile())
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProfile(out)
	if err != nil {
		t.Fatal(err)
	}
	back := p.Manifest()
	if back.Product != "camrec" || !reflect.DeepEqual(back.Recognize, m.Recognize) || !reflect.DeepEqual(back.Config, m.Config) ||
		!reflect.DeepEqual(back.Index, m.Index) || !reflect.DeepEqual(back.DataVolumes, m.DataVolumes) || len(back.Artifacts) != 0 {
		t.Errorf("profile round trip: %+v", back)
	}
	for _, bad := range []string{`{}`, `{"product":"x","config":["/etc"]}`, `{"product":"x","recognize":{"files":["/a"],"version_file":"/v"}}`,
		`{"product":"x","recognize":{"files":["/a"],"version_file":"/v"},"config":["/etc"],"layout":{}}`} {
		if _, err := ParseProfile([]byte(bad)); err == nil {
			t.Errorf("profile %s accepted", bad)
		}
	}
}
