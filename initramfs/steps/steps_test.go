package steps

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/config"
)

var update = flag.Bool("update", false, "rewrite the README's table of steps")

func TestOf(t *testing.T) {
	for name, want := range map[string]string{
		"plan": Plan, "write root": Write, "write ": "", "format SN-1": Format, "rollback save": Save,
		"rollback 3": Piece, "rolled back": RolledIn, "boot entry": Entry, "boot": Boot, "writeroot": "", "": "",
	} {
		s, ok := Of(name)
		if ok != (want != "") || s.Name != want {
			t.Errorf("Of(%q) = %q %v, want %q", name, s.Name, ok, want)
		}
	}
}

// TestWritesSystem: the steps after which the old system may be gone are
// exactly those that write the target (or format a data disk), and the
// boot.
func TestWritesSystem(t *testing.T) {
	for _, n := range []string{"write esp", "write root", "format SN", WayBack, Entry, State, Fstab, Restore, Table, Boot} {
		if !WritesSystem(n) {
			t.Errorf("%q does not write the system", n)
		}
	}
	for _, n := range []string{Plan, Release, Save, Recover, Backup, Verify, Complete, Reattach, RolledIn, Health, "note", ""} {
		if WritesSystem(n) {
			t.Errorf("%q writes the system", n)
		}
	}
}

func TestTable(t *testing.T) {
	names := map[string]bool{}
	for _, s := range all {
		if names[s.Name] {
			t.Errorf("%q twice", s.Name)
		}
		names[s.Name] = true
		if len(s.Modes) == 0 || s.Needs == "" || s.Records == "" || s.Where == "" {
			t.Errorf("%q: incomplete row %+v", s.Name, s)
		}
		if fi, err := os.Stat(filepath.Join("../..", s.Where)); err != nil || !fi.IsDir() {
			t.Errorf("%q lives in %s: %v", s.Name, s.Where, err)
		}
	}
	var mig []string
	for _, s := range In(config.ModeMigrate) {
		mig = append(mig, s.Name)
	}
	want := []string{Plan, Release, Save, Recover, Backup, Verify, Complete, Upload, Reattach, Write, WayBack, Entry, State, Fstab, Restore, Table, Boot, Health}
	if !slices.Equal(mig, want) {
		t.Errorf("a migration's steps: %q, want %q", mig, want)
	}
}

// TestReadme: the README's table of steps is Markdown(), one source of
// truth (go test ./initramfs/steps -update rewrites it).
func TestReadme(t *testing.T) {
	const begin, end = "<!-- steps: generated from initramfs/steps -->\n", "<!-- end of steps -->\n"
	p := "../../README.md"
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q … %q section", strings.TrimSpace(begin), strings.TrimSpace(end))
	}
	got, want := text[i+len(begin):j], Markdown()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(p, []byte(text[:i+len(begin)]+want+text[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's table of steps is not initramfs/steps' (go test ./initramfs/steps -update):\n%s", want)
}
