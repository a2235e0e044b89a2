package repoclient

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/image/repo/tufjs"
)

// TestInteroperability: tuf-js, a TUF client that shares no code with
// go-tuf, takes a repository passeur repo wrote, its delegated account
// policy and its release files, and refuses by name what passeur's client
// refuses: an expired timestamp, a replayed older snapshot, a target whose
// bytes changed, a timestamp signed below its threshold.
func TestInteroperability(t *testing.T) {
	js := tufjs.ForTest(t)
	ctx := context.Background()
	type client struct{ passeur, tufjs string } // each one's state
	fresh := func() client { return client{t.TempDir(), t.TempDir()} }
	both := func(v *repotest.Vendor, c client, target string) (error, tufjs.Result) {
		t.Helper()
		_, err := openBox(v, c.passeur, v.Now)
		res, jerr := tufjs.Refresh(ctx, tufjs.Options{Dir: js, MetadataURL: v.Srv.URL + "/metadata", TargetsURL: v.Srv.URL + "/targets",
			TrustedRoot: v.Root, CacheDir: c.tufjs, Target: target})
		if jerr != nil {
			t.Fatal(jerr)
		}
		if err == nil && target != "" {
			var cl *Client
			if cl, err = openBox(v, c.passeur, v.Now); err == nil {
				_, err = cl.Download(ctx, target, filepath.Join(t.TempDir(), "file"), fetch.Options{Attempts: 1})
			}
		}
		return err, res
	}
	setup := func() *repotest.Vendor {
		v := repotest.New(t)
		v.Now = time.Now().UTC() // tuf-js reads the real clock
		v.Edit(func(r *editor.Repo) error { return nil })
		v.Publish("8.0.0")
		v.Edit(func(r *editor.Repo) error {
			if err := r.AddAccount("acme"); err != nil {
				return err
			}
			return r.SetDefault("acme", "camrec", "8.0.0", nil)
		})
		return v
	}

	t.Run("accepted", func(t *testing.T) {
		v := setup()
		for _, target := range []string{repo.ReleaseTarget("camrec", "8.0.0", "root.img.zst"), repo.AccountTarget("acme", "camrec")} {
			err, res := both(v, fresh(), target)
			if err != nil || !res.OK {
				t.Fatalf("%s: passeur %v, tuf-js %v\n%s", target, err, res, res.Log)
			}
			tf := v.Target(target)
			if res.Length != tf.Length || res.SHA256 != hex.EncodeToString(tf.Hashes["sha256"]) {
				t.Errorf("%s: tuf-js got %d bytes %s, signed %d %x", target, res.Length, res.SHA256, tf.Length, tf.Hashes["sha256"])
			}
		}
	})
	for _, tc := range []struct {
		name   string
		break_ func(v *repotest.Vendor, seen client)
		target string
		ours   error
		theirs string
	}{
		{"expired timestamp", func(v *repotest.Vendor, _ client) {
			v.TimestampD = -1
			v.Edit(func(r *editor.Repo) error { return nil })
			v.TimestampD = 0
		}, "", ErrExpired, "ExpiredMetadataError"},
		{"replayed older snapshot", func(v *repotest.Vendor, seen client) {
			old := t.TempDir()
			os.CopyFS(old, os.DirFS(filepath.Join(v.Dir, repo.MetadataDir)))
			v.Edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
			if err, res := both(v, seen, ""); err != nil || !res.OK {
				t.Fatalf("the newer metadata: passeur %v, tuf-js %v", err, res)
			}
			data, _ := os.ReadFile(filepath.Join(old, "timestamp.json"))
			os.WriteFile(filepath.Join(v.Dir, repo.MetadataDir, "timestamp.json"), data, 0o644)
		}, "", ErrRollback, "BadVersionError"},
		{"a target whose bytes changed", func(v *repotest.Vendor, _ client) {
			tf := v.Target(repo.ReleaseTarget("camrec", "8.0.0", "root.img.zst"))
			p := editor.StoredPath(v.Dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0xff
			os.WriteFile(p, data, 0o644)
		}, repo.ReleaseTarget("camrec", "8.0.0", "root.img.zst"), ErrHash, "LengthOrHashMismatchError"},
		{"a target cut short", func(v *repotest.Vendor, _ client) {
			tf := v.Target(repo.ManifestTarget("camrec", "8.0.0"))
			p := editor.StoredPath(v.Dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)-10], 0o644)
		}, repo.ManifestTarget("camrec", "8.0.0"), ErrHash, "LengthOrHashMismatchError"},
		{"timestamp signed below its threshold", func(v *repotest.Vendor, _ client) {
			thief := t.TempDir()
			os.CopyFS(thief, os.DirFS(v.Keys))
			v.Edit(func(r *editor.Repo) error { return r.RotateKey("timestamp") })
			forgeTimestamp(t, v, thief)
		}, "", ErrSignature, "UnsignedMetadataError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := setup()
			seen := fresh()
			tc.break_(v, seen)
			err, res := both(v, seen, tc.target)
			if res.OK || res.Error != tc.theirs {
				t.Errorf("tuf-js: %v, want %s", res, tc.theirs)
			}
			if err == nil || (tc.ours != nil && !errors.Is(err, tc.ours)) {
				t.Errorf("passeur: %v, want %v", err, tc.ours)
			}
			t.Logf("passeur: %v\ntuf-js: %s: %s", err, res.Error, strings.TrimSpace(res.Message))
		})
	}
}
