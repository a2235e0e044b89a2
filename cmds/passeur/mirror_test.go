package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
)

// TestMirrorSync: the customer's command, against a vendor's repository on
// loopback, as the README gives it.
func TestMirrorSync(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0", "8.1.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		if err := r.SetDefault("acme", "camrec", "8.0.0", nil); err != nil {
			return err
		}
		return r.SetAccountTag("acme", "camrec", "test-8.1", "8.1.0")
	})
	root := filepath.Join(t.TempDir(), "vendor-root.json")
	os.WriteFile(root, v.Root, 0o644)
	dir := filepath.Join(t.TempDir(), "mirror")
	out := runOK(t, "mirror", "sync", "-upstream", v.Srv.URL, "-root", root, "-account", "acme", "-tag", "test-8.1", "-dir", dir)
	if !strings.Contains(out, "holds [8.0.0 8.1.0]") {
		t.Errorf("sync said %q", out)
	}
	data, err := os.ReadFile(filepath.Join(dir, mirror.File))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := mirror.ParseRecord(data); err != nil || r.Default != "8.0.0" || r.Tag != "test-8.1" {
		t.Errorf("mirror.json %+v, %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(dir, repo.MetadataDir, "timestamp.json")); err != nil {
		t.Error(err)
	}
	if err := run([]string{"mirror", "sync", "-upstream", v.Srv.URL, "-root", root, "-account", "globex", "-dir", dir}, &strings.Builder{}, &strings.Builder{}); err == nil {
		t.Error("a mirror of an account the repository does not know: want a refusal")
	}
}
