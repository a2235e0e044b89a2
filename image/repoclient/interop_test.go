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

	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
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
	both := func(v *vendor, c client, target string) (error, tufjs.Result) {
		t.Helper()
		_, err := v.box(c.passeur, v.now)
		res, jerr := tufjs.Refresh(ctx, tufjs.Options{Dir: js, MetadataURL: v.srv.URL + "/metadata", TargetsURL: v.srv.URL + "/targets",
			TrustedRoot: v.root, CacheDir: c.tufjs, Target: target})
		if jerr != nil {
			t.Fatal(jerr)
		}
		if err == nil && target != "" {
			var cl *Client
			if cl, err = v.box(c.passeur, v.now); err == nil {
				_, err = cl.Download(ctx, target, filepath.Join(t.TempDir(), "file"), v.fetchOptions())
			}
		}
		return err, res
	}
	setup := func() *vendor {
		v := newVendor(t)
		v.now = time.Now().UTC() // tuf-js reads the real clock
		v.edit(func(r *editor.Repo) error { return nil })
		v.publish("8.0.0")
		v.edit(func(r *editor.Repo) error {
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
			tf := v.target(target)
			if res.Length != tf.Length || res.SHA256 != hex.EncodeToString(tf.Hashes["sha256"]) {
				t.Errorf("%s: tuf-js got %d bytes %s, signed %d %x", target, res.Length, res.SHA256, tf.Length, tf.Hashes["sha256"])
			}
		}
	})
	for _, tc := range []struct {
		name   string
		break_ func(v *vendor, seen client)
		target string
		ours   error
		theirs string
	}{
		{"expired timestamp", func(v *vendor, _ client) {
			v.timestampD = -1
			v.edit(func(r *editor.Repo) error { return nil })
			v.timestampD = 0
		}, "", ErrExpired, "ExpiredMetadataError"},
		{"replayed older snapshot", func(v *vendor, seen client) {
			old := t.TempDir()
			os.CopyFS(old, os.DirFS(filepath.Join(v.dir, repo.MetadataDir)))
			v.edit(func(r *editor.Repo) error { return r.Tag("camrec", "stable", "8.0.0") })
			if err, res := both(v, seen, ""); err != nil || !res.OK {
				t.Fatalf("the newer metadata: passeur %v, tuf-js %v", err, res)
			}
			data, _ := os.ReadFile(filepath.Join(old, "timestamp.json"))
			os.WriteFile(filepath.Join(v.dir, repo.MetadataDir, "timestamp.json"), data, 0o644)
		}, "", ErrRollback, "BadVersionError"},
		{"a target whose bytes changed", func(v *vendor, _ client) {
			tf := v.target(repo.ReleaseTarget("camrec", "8.0.0", "root.img.zst"))
			p := editor.StoredPath(v.dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0xff
			os.WriteFile(p, data, 0o644)
		}, repo.ReleaseTarget("camrec", "8.0.0", "root.img.zst"), ErrHash, "LengthOrHashMismatchError"},
		{"a target cut short", func(v *vendor, _ client) {
			tf := v.target(repo.ManifestTarget("camrec", "8.0.0"))
			p := editor.StoredPath(v.dir, tf.Path, hex.EncodeToString(tf.Hashes["sha256"]))
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)-10], 0o644)
		}, repo.ManifestTarget("camrec", "8.0.0"), ErrHash, "LengthOrHashMismatchError"},
		{"timestamp signed below its threshold", func(v *vendor, _ client) {
			thief := t.TempDir()
			os.CopyFS(thief, os.DirFS(v.keys))
			v.edit(func(r *editor.Repo) error { return r.RotateKey("timestamp") })
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
