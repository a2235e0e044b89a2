package camrec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/builder"
	"github.com/passeur/passeur/image/version"
)

const repoRoot = "../.."

// TestSpecV8 derives every camrec 8 release from release.json: 8.0.0 is
// the file as it is; a later one names its own version wherever 8.0.0's
// names its (nothing of 8.0.0 is left in it but its migrate_from), bakes
// it into camrecd, and migrates what 8.0.0 migrates and the older camrec 8
// boxes; written as JSON, it reads back as the same spec.
func TestSpecV8(t *testing.T) {
	base, err := builder.ReadSpec(filepath.Join(repoRoot, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	if base.Manifest.Version.String() != V8Versions[0] {
		t.Fatalf("%s is camrec %s, V8Versions begins with %s", SpecFile, base.Manifest.Version, V8Versions[0])
	}
	for i, v := range V8Versions {
		spec, err := SpecV8(repoRoot, v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if i == 0 {
			if !reflect.DeepEqual(spec, base) {
				t.Errorf("8.0.0's spec is not %s as it is", SpecFile)
			}
			continue
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		delete(m["manifest"].(map[string]any), "migrate_from")
		if left, _ := json.Marshal(m); strings.Contains(string(left), V8Versions[0]) {
			t.Errorf("%s's spec still names %s: %s", v, V8Versions[0], left)
		}
		for what, got := range map[string]string{
			"version":            spec.Manifest.Version.String(),
			"esp title":          spec.Build.ESP.Title,
			"ldflags":            spec.Build.Root.LDFlags,
			"etc/camrec/version": spec.Build.Root.Files["etc/camrec/version"],
			"etc/os-release":     spec.Build.Root.Files["etc/os-release"],
			"migrate_from":       spec.Manifest.MigrateFrom.String(),
		} {
			if !strings.Contains(got, v) {
				t.Errorf("%s: %s is %q", v, what, got)
			}
		}
		// How an install is recognised, what is kept and backed up: as 8.0.0.
		if !reflect.DeepEqual(spec.Manifest.Recognize, base.Manifest.Recognize) || !reflect.DeepEqual(spec.Manifest.Layout, base.Manifest.Layout) ||
			!reflect.DeepEqual(spec.Manifest.Config, base.Manifest.Config) || !reflect.DeepEqual(spec.Manifest.Index, base.Manifest.Index) {
			t.Errorf("%s: recognize, layout, config or index differ from 8.0.0's", v)
		}
		if want := "-X main.version=" + v; spec.Build.Root.LDFlags != want {
			t.Errorf("%s: ldflags %q, want %q", v, spec.Build.Root.LDFlags, want)
		}
		if got := spec.Build.Root.Files["etc/camrec/version"]; got != "camrec "+v+"\n" {
			t.Errorf("%s: etc/camrec/version %q", v, got)
		}
		// The versions it migrates: camrec 7 from 7.14.0.2 (the seed), and
		// every camrec 8 older than itself; never itself, nothing later.
		for _, from := range append([]string{"7.14.0.2", "7.14.0.3", "7.15"}, V8Versions[:i]...) {
			if !spec.Manifest.MigrateFrom.Contains(version.MustParse(from)) {
				t.Errorf("%s (migrate_from %s) does not migrate %s", v, spec.Manifest.MigrateFrom, from)
			}
		}
		for _, from := range append([]string{"7.12", "7.14.0.1", "8.0.0-rc1", "9"}, V8Versions[i:]...) {
			if spec.Manifest.MigrateFrom.Contains(version.MustParse(from)) {
				t.Errorf("%s (migrate_from %s) migrates %s", v, spec.Manifest.MigrateFrom, from)
			}
		}
		// What camrec-spec writes, passeur release build reads back.
		p := filepath.Join(t.TempDir(), "spec.json")
		os.WriteFile(p, b, 0o644)
		back, err := builder.ReadSpec(p)
		if err != nil || !reflect.DeepEqual(back, spec) {
			t.Errorf("%s's spec read back: %v\n got %+v\nwant %+v", v, err, back, spec)
		}
	}
	for _, v := range []string{"8.0.0-rc1", "7.14.0.3", "9.0.0", "8", "8.x"} {
		if _, err := SpecV8(repoRoot, v); err == nil {
			t.Errorf("camrec %s derived", v)
		}
	}
}
