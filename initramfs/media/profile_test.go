package media

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
)

func TestProfileOfSpec(t *testing.T) {
	spec, err := os.ReadFile("../../qemu/camrec/v8/release.json")
	if err != nil {
		t.Fatal(err)
	}
	name, data, err := release.ProfileOf(spec)
	if err != nil {
		t.Fatal(err)
	}
	if name != "camrec" || strings.Contains(string(data), "layout") || !strings.Contains(string(data), `"state_label": "state"`) {
		t.Errorf("profile of the camrec 8 spec: %s %s", name, data)
	}
	dir := t.TempDir()
	if _, err := LoadProfiles(dir); err != ErrNoProfile {
		t.Errorf("empty folder: %v, want ErrNoProfile", err)
	}
	os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644)
	ps, err := LoadProfiles(dir)
	if err != nil || len(ps) != 1 || ps[0].Product != "camrec" || ps[0].Index[0] != "/var/lib/camrec/index" {
		t.Fatalf("LoadProfiles: %v %+v", err, ps)
	}
	if _, _, err := release.ProfileOf([]byte(`{"manifest": {"product": "x"}}`)); err == nil {
		t.Error("a spec with no recognize or config gave a profile")
	}
}
