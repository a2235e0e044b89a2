package tests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/sign"
)

// devRepo copies the development repository whose root the rescue image
// carries (build.sh makes it once, PASSEUR_REPO_ROOT names another) and
// its keys, so that a test changes its own copy.
func devRepo(t *testing.T) (dir, keys string) {
	t.Helper()
	root := os.Getenv("PASSEUR_REPO_ROOT")
	if root == "" {
		root = filepath.Join(repoRoot(t), ".cache/dev-repo/metadata/1.root.json")
	}
	src := filepath.Dir(filepath.Dir(root))
	srcKeys := os.Getenv("PASSEUR_REPO_KEYS")
	if srcKeys == "" {
		srcKeys = filepath.Join(repoRoot(t), ".cache/keys/repo")
	}
	if _, err := os.Stat(filepath.Join(srcKeys, "root.pem")); err != nil {
		if os.Getenv("PASSEUR_REQUIRE_VM") != "" {
			t.Fatalf("repository keys: %v", err)
		}
		t.Skipf("repository keys: %v (run ./build.sh first)", err)
	}
	dir, keys = t.TempDir(), t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(keys, os.DirFS(srcKeys)); err != nil {
		t.Fatal(err)
	}
	return dir, keys
}

// publish publishes releases into a copy of the development repository
// and points "stable" at the last: the repository a lab serves.
func publish(t *testing.T, rels ...camrecRelease) string {
	t.Helper()
	dir, keys := devRepo(t)
	editRepo(t, dir, keys, func(r *editor.Repo) error {
		ms, err := publishReleases(r, rels...)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := r.Tag(m.Product, "stable", m.Version.String()); err != nil {
				return err
			}
		}
		return nil
	})
	return dir
}

// publishReleases publishes camrec releases, each verified with the key
// it was signed by, in order.
func publishReleases(r *editor.Repo, rels ...camrecRelease) ([]*release.Manifest, error) {
	var out []*release.Manifest
	for _, rel := range rels {
		pk, err := sign.LoadPublicKey(rel.pub)
		if err != nil {
			return out, err
		}
		m, err := r.Publish(rel.dir, pk)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// editRepo changes a repository and commits, as passeur repo does.
func editRepo(t *testing.T, dir, keys string, change func(r *editor.Repo) error) {
	t.Helper()
	r, err := editor.Open(dir, keys, editor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := change(r); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(); err != nil {
		t.Fatal(err)
	}
}
