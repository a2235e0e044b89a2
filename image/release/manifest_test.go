package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path"
	"reflect"
	"regexp"
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
		{"traversal version", `"version": "8.0.0"`, `"version": "8.0.0-x/../../../passeur"`, version.ErrSyntax},
		{"traversal product", `"product": "camrec"`, `"product": "../../passeur"`, ErrUnsafeName},
		{"product with a slash", `"product": "camrec"`, `"product": "cam/rec"`, ErrUnsafeName},
		{"hidden product", `"product": "camrec"`, `"product": ".camrec"`, ErrUnsafeName},
		{"product with a newline", `"product": "camrec"`, `"product": "camrec\n"`, ErrUnsafeName},
		{"product too long", `"product": "camrec"`, `"product": "` + strings.Repeat("c", 65) + `"`, ErrUnsafeName},
		{"traversal arch", `"arch": "amd64"`, `"arch": "../amd64"`, ErrUnsafeName},
		{"artifact name with a slash", `"name": "esp", "file"`, `"name": "e/sp", "file"`, ErrUnsafeName},
		{"artifact file as the manifest", `"file": "esp.img.zst"`, `"file": "manifest.json"`, ErrUnsafeName},
		{"artifact file as the signature", `"file": "esp.img.zst"`, `"file": "manifest.json.minisig"`, ErrUnsafeName},
		{"unclean artifact file", `"file": "esp.img.zst"`, `"file": "a/../esp.img.zst"`, ErrUnsafeName},
		{"artifact file with a space", `"file": "esp.img.zst"`, `"file": "esp img.zst"`, ErrUnsafeName},
		{"relative recognize file", `"files": ["/etc/camrec/camrec.conf"]`, `"files": ["etc/camrec/camrec.conf"]`, ErrSyntax},
		{"unclean index", `"index": ["/var/lib/camrec/index"]`, `"index": ["/var/lib/camrec/../../../run/passeur"]`, ErrSyntax},
		{"bad mount point glob", `"fstab_mountpoints": ["/srv/recordings*"]`, `"fstab_mountpoints": ["/srv/[recordings"]`, ErrSyntax},
		{"relative mount point glob", `"fstab_mountpoints": ["/srv/recordings*"]`, `"fstab_mountpoints": ["srv/recordings*"]`, ErrSyntax},
		{"bad label glob", `"label_patterns": ["camrec-data*"]`, `"label_patterns": ["camrec-data\\"]`, ErrSyntax},
		{"staging on no data volume", `"min_media_free"`, `"staging": {"labels": ["boot"], "dir": "passeur-staging"}, "min_media_free"`, ErrSyntax},
		{"staging folder escaping", `"min_media_free"`, `"staging": {"labels": ["camrec-data1"], "dir": "../etc"}, "min_media_free"`, ErrUnsafeName},
		{"staging folder nested", `"min_media_free"`, `"staging": {"labels": ["camrec-data1"], "dir": "a/b"}, "min_media_free"`, ErrUnsafeName},
		{"staging without labels", `"min_media_free"`, `"staging": {"dir": "passeur-staging"}, "min_media_free"`, ErrMissingField},
		{"staging unknown field", `"min_media_free"`, `"staging": {"labels": ["camrec-data1"], "dir": "s", "disk": "/dev/sda"}, "min_media_free"`, ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(mutate(t, tc.old, tc.new))
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStaging(t *testing.T) {
	m, err := Parse(mutate(t, `"min_media_free"`, `"staging": {"labels": ["camrec-data*"], "dir": "passeur-staging"}, "min_media_free"`))
	if err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]bool{"camrec-data": true, "camrec-data2": true, "rec-a": false, "": false, "boot": false} {
		if got := m.StagingVolume(label); got != want {
			t.Errorf("StagingVolume(%q) = %v, want %v", label, got, want)
		}
	}
	if m, _ = Parse(mutate(t, `"min_media_free"`, `"min_media_free"`)); m == nil || m.StagingVolume("camrec-data") {
		t.Error("a release that declares no staging area accepts one")
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

// FuzzParse checks that no input makes Parse panic, that every refusal is
// named, and that what it accepts survives a canonical round trip and
// names only places inside its folder.
func FuzzParse(f *testing.F) {
	f.Add(example(f))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":1,"layout":{"partitions":[{"size":"rest"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			for _, named := range []error{ErrSyntax, ErrMissingField, ErrUnknownRole, ErrUnknownArtifact, ErrLayout, ErrUnsafeName, version.ErrSyntax} {
				if errors.Is(err, named) {
					return
				}
			}
			t.Fatalf("Parse refused with an unnamed error: %v", err)
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("accepted manifest does not re-parse: %v\n%s", err, b)
		}
		if b2, _ := again.Marshal(); !bytes.Equal(b, b2) {
			t.Errorf("marshal is not canonical:\n%s\n%s", b, b2)
		}
		folder := path.Join("/releases", m.Product+"-"+m.Version.String())
		if path.Dir(folder) != "/releases" {
			t.Errorf("release folder %q leaves /releases", folder)
		}
		for _, a := range m.Artifacts {
			if p := path.Join(folder, a.File); !strings.HasPrefix(p, folder+"/") || p == path.Join(folder, ManifestFile) {
				t.Errorf("artifact %s at %q, outside %s or over its manifest", a.Name, p, folder)
			}
		}
		checkProfile(t, m.Profile())
	})
}

// checkProfile asserts the invariants every accepted profile holds.
func checkProfile(t *testing.T, p Profile) {
	t.Helper()
	if !safeName.MatchString(p.Product) || path.Base(p.Product) != p.Product {
		t.Errorf("product %q is not one safe name", p.Product)
	}
	paths := append(append(append([]string{p.Recognize.VersionFile}, p.Recognize.Files...), p.Config...), p.Index...)
	for _, q := range append(paths, p.DataVolumes.FstabMountpoints...) {
		if !path.IsAbs(q) || path.Clean(q) != q {
			t.Errorf("path %q is not absolute and clean", q)
		}
	}
	if len(p.Config) == 0 || p.Recognize.VersionFile == "" {
		t.Errorf("profile %+v: nothing to back up or no version file", p)
	}
	if re, err := regexp.Compile(p.Recognize.VersionRegexp); err != nil || re.NumSubexp() < 1 {
		t.Errorf("version_regexp %q: %v", p.Recognize.VersionRegexp, err)
	}
	for _, g := range append(p.DataVolumes.FstabMountpoints, p.DataVolumes.LabelPatterns...) {
		if _, err := path.Match(g, ""); err != nil {
			t.Errorf("glob %q: %v", g, err)
		}
	}
}

// FuzzProfile checks that ParseProfile refuses by name, and that the
// profiles it accepts hold their invariants and round-trip.
func FuzzProfile(f *testing.F) {
	for _, name := range []string{"testdata/profile-camrec.json", "testdata/camrec-8.0.0.json"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"product":"x","recognize":{"files":["/a"],"version_file":"/v","version_regexp":"(.*)"},"config":["/etc"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile(data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrMissingField) && !errors.Is(err, ErrUnsafeName) {
				t.Fatalf("ParseProfile refused with an unnamed error: %v", err)
			}
			return
		}
		checkProfile(t, *p)
		if len(p.Recognize.Files) == 0 {
			t.Errorf("profile without recognize.files accepted")
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseProfile(out)
		if err != nil {
			t.Fatalf("accepted profile does not re-parse: %v\n%s", err, out)
		}
		if out2, _ := json.Marshal(again); !bytes.Equal(out, out2) {
			t.Errorf("profile round trip:\n%s\n%s", out, out2)
		}
		if err := p.Manifest().Profile().check(); err != nil {
			t.Errorf("the profile's manifest fails its own profile check: %v", err)
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

// TestProfileRefusals: a profile names a file in the rescue image
// (products/<product>.json) and paths of the old root; each unsafe one is
// refused by name.
func TestProfileRefusals(t *testing.T) {
	good, err := os.ReadFile("testdata/profile-camrec.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseProfile(good); err != nil {
		t.Fatalf("the camrec profile: %v", err)
	}
	for _, tc := range []struct {
		name, old, new string
		want           error
	}{
		{"traversal product", `"product": "camrec"`, `"product": "../../etc/passwd"`, ErrUnsafeName},
		{"empty product", `"product": "camrec"`, `"product": ""`, ErrMissingField},
		{"relative config", `"/etc/camrec"`, `"etc/camrec"`, ErrSyntax},
		{"unclean config", `"/etc/camrec"`, `"/etc/camrec/../../run/passeur/media"`, ErrSyntax},
		{"relative recognize file", `"/etc/camrec/camrec.conf"`, `"camrec.conf"`, ErrSyntax},
		{"relative version file", `"version_file": "/etc/camrec/version"`, `"version_file": "version"`, ErrSyntax},
		{"relative index", `"/var/lib/camrec/index"`, `"var/lib/camrec/index"`, ErrSyntax},
		{"no version regexp", `"version_regexp": "^camrec ([0-9][0-9.]*)"`, `"version_regexp": ""`, ErrMissingField},
		{"version regexp without group", `"^camrec ([0-9][0-9.]*)"`, `"^camrec"`, ErrSyntax},
		{"bad mount point glob", `"/srv/recordings/*"`, `"/srv/[recordings"`, ErrSyntax},
		{"no recognize files", `"files": [
      "/etc/camrec/camrec.conf"
    ]`, `"files": []`, ErrMissingField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(good, []byte(tc.old)) {
				t.Fatalf("profile has no %q", tc.old)
			}
			_, err := ParseProfile(bytes.Replace(good, []byte(tc.old), []byte(tc.new), 1))
			if !errors.Is(err, tc.want) {
				t.Errorf("ParseProfile = %v, want %v", err, tc.want)
			}
		})
	}
}
