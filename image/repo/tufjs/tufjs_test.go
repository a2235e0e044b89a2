package tufjs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// install installs tuf-js once per test binary.
func install(t *testing.T) string { return ForTest(t) }

// testRepo is a TUF repository on disk made with go-tuf's metadata API:
// consistent snapshots, metadata/N.root.json, N.targets.json,
// N.snapshot.json, timestamp.json, and targets/<sha256>.<name>.
type testRepo struct {
	t         *testing.T
	dir       string
	keys      map[string][]ed25519.PrivateKey // signing keys by role
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	srv       *httptest.Server
}

var roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

func newRepo(t *testing.T) *testRepo {
	t.Helper()
	// Not truncated to the second: go-tuf writes RFC 3339 with
	// nanoseconds, and tuf-js must verify signatures over that form.
	in := func(d time.Duration) time.Time { return time.Now().UTC().Add(d) }
	r := &testRepo{
		t:         t,
		dir:       t.TempDir(),
		keys:      map[string][]ed25519.PrivateKey{},
		root:      metadata.Root(in(365 * 24 * time.Hour)),
		targets:   metadata.Targets(in(7 * 24 * time.Hour)),
		snapshot:  metadata.Snapshot(in(7 * 24 * time.Hour)),
		timestamp: metadata.Timestamp(in(24 * time.Hour)),
	}
	for _, d := range []string{"metadata", "targets"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, role := range roles {
		r.addKey(role)
	}
	r.srv = httptest.NewServer(http.FileServer(http.Dir(r.dir)))
	t.Cleanup(r.srv.Close)
	return r
}

// addKey makes a new key for role and lists it in root.
func (r *testRepo) addKey(role string) {
	r.t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	key, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.root.Signed.AddKey(key, role); err != nil {
		r.t.Fatal(err)
	}
	r.keys[role] = append(r.keys[role], priv)
}

// replaceKeys revokes role's keys from root and gives it one new key.
func (r *testRepo) replaceKeys(role string) {
	r.t.Helper()
	for _, id := range append([]string(nil), r.root.Signed.Roles[role].KeyIDs...) {
		if err := r.root.Signed.RevokeKey(id, role); err != nil {
			r.t.Fatal(err)
		}
	}
	r.keys[role] = nil
	r.addKey(role)
}

type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
	ClearSignatures()
	ToBytes(bool) ([]byte, error)
}

// sign replaces md's signatures with those of the first n keys of role
// (all of them when n < 0), and returns the bytes to publish.
func (r *testRepo) sign(md signable, role string, n int) []byte {
	r.t.Helper()
	keys := r.keys[role]
	if n >= 0 {
		keys = keys[:n]
	}
	md.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadSigner(k, crypto.Hash(0))
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := md.Sign(s); err != nil {
			r.t.Fatal(err)
		}
	}
	data, err := md.ToBytes(true)
	if err != nil {
		r.t.Fatal(err)
	}
	return data
}

func (r *testRepo) write(name string, data []byte) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), data, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// addTarget lists data as target name and stores it as targets/<sha256>.<name>.
func (r *testRepo) addTarget(name string, data []byte) {
	r.t.Helper()
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		r.t.Fatal(err)
	}
	r.targets.Signed.Targets[name] = tf
	sum := sha256.Sum256(data)
	r.write(filepath.Join("targets", hex.EncodeToString(sum[:])+"."+name), data)
}

func (r *testRepo) writeRoot()    { r.writeRootSigned(-1) }
func (r *testRepo) writeTargets() { r.writeTargetsSigned(-1) }

func (r *testRepo) writeRootSigned(n int) {
	r.write(fmt.Sprintf("metadata/%d.root.json", r.root.Signed.Version), r.sign(r.root, metadata.ROOT, n))
}

func (r *testRepo) writeTargetsSigned(n int) {
	r.write(fmt.Sprintf("metadata/%d.targets.json", r.targets.Signed.Version), r.sign(r.targets, metadata.TARGETS, n))
}

// writeSnapshot lists the current targets version.
func (r *testRepo) writeSnapshot() {
	r.snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(r.targets.Signed.Version)
	r.write(fmt.Sprintf("metadata/%d.snapshot.json", r.snapshot.Signed.Version), r.sign(r.snapshot, metadata.SNAPSHOT, -1))
}

// writeTimestamp points at snapshot version v, with its length and hash,
// signed by the first n timestamp keys (all when n < 0).
func (r *testRepo) writeTimestamp(v int64, n int) {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, fmt.Sprintf("metadata/%d.snapshot.json", v)))
	if err != nil {
		r.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	mf := metadata.MetaFile(v)
	mf.Length = int64(len(data))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	r.timestamp.Signed.Meta["snapshot.json"] = mf
	r.write("metadata/timestamp.json", r.sign(r.timestamp, metadata.TIMESTAMP, n))
}

// publish writes every role at its current version.
func (r *testRepo) publish() {
	r.writeRoot()
	r.writeTargets()
	r.writeSnapshot()
	r.writeTimestamp(r.snapshot.Signed.Version, -1)
}

// trustedRoot is 1.root.json, what a client is shipped with.
func (r *testRepo) trustedRoot() []byte {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, "metadata/1.root.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	return data
}

// client runs tuf-js against the repository with the state in cache.
func (r *testRepo) client(dir, cache, target string) Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Refresh(ctx, Options{
		Dir:         dir,
		MetadataURL: r.srv.URL + "/metadata/",
		TargetsURL:  r.srv.URL + "/targets/",
		TrustedRoot: r.trustedRoot(),
		CacheDir:    cache,
		Target:      target,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("tuf-js: %v", res)
	return res
}

func wantOK(t *testing.T, res Result) {
	t.Helper()
	if !res.OK {
		t.Fatalf("tuf-js refused a good repository: %s: %s", res.Error, res.Message)
	}
}

// wantRefused checks tuf-js refused with the error class name, and that
// the message says what it is about.
func wantRefused(t *testing.T, res Result, name, about string) {
	t.Helper()
	if res.OK {
		t.Fatalf("tuf-js accepted a bad repository (%v), want %s", res, name)
	}
	if res.Error != name || !strings.Contains(res.Message, about) {
		t.Fatalf("tuf-js refused with %s (%v): %s; want %s about %q", res.Error, res.Classes, res.Message, name, about)
	}
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestGoodRepository(t *testing.T) {
	dir := install(t)
	r := newRepo(t)
	img := payload(300 << 10)
	r.addTarget("camrec-8.0.0.img", img)
	r.publish()

	cache := t.TempDir()
	res := r.client(dir, cache, "camrec-8.0.0.img")
	wantOK(t, res)
	sum := sha256.Sum256(img)
	if res.Length != int64(len(img)) || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("downloaded %d bytes, sha256 %s; want %d, %x", res.Length, res.SHA256, len(img), sum)
	}
	got, err := os.ReadFile(res.File)
	if err != nil || !bytes.Equal(got, img) {
		t.Errorf("the file tuf-js wrote differs from the target (%v)", err)
	}
	want := map[string]int64{"root": 1, "timestamp": 1, "snapshot": 1, "targets": 1}
	if fmt.Sprint(res.Versions) != fmt.Sprint(want) {
		t.Errorf("trusted versions %v, want %v", res.Versions, want)
	}

	// A target no role lists is the harness's own error, not a download.
	wantRefused(t, r.client(dir, cache, "camrec-9.img"), "TargetNotFoundError", "camrec-9.img")
}

// TestRootRotation: a client that trusts root 1 walks to 2.root.json and
// trusts the new timestamp key it names.
func TestRootRotation(t *testing.T) {
	dir := install(t)
	r := newRepo(t)
	r.publish()
	cache := t.TempDir()
	wantOK(t, r.client(dir, cache, ""))

	r.root.Signed.Version = 2
	r.replaceKeys(metadata.TIMESTAMP)
	r.writeRoot()
	r.timestamp.Signed.Version = 2
	r.writeTimestamp(1, -1)
	res := r.client(dir, cache, "")
	wantOK(t, res)
	if res.Versions["root"] != 2 || res.Versions["timestamp"] != 2 {
		t.Errorf("trusted versions %v, want root 2, timestamp 2", res.Versions)
	}
}

func TestExpiredTimestamp(t *testing.T) {
	dir := install(t)
	r := newRepo(t)
	r.publish()
	wantOK(t, r.client(dir, t.TempDir(), ""))

	r.timestamp.Signed.Version = 2
	r.timestamp.Signed.Expires = time.Now().UTC().Add(-time.Hour)
	r.writeTimestamp(1, -1)
	wantRefused(t, r.client(dir, t.TempDir(), ""), "ExpiredMetadataError", "timestamp")
}

// TestSnapshotRollback: a client that has seen snapshot 2 refuses a new,
// validly signed timestamp that points back at snapshot 1.
func TestSnapshotRollback(t *testing.T) {
	dir := install(t)
	r := newRepo(t)
	r.publish()
	r.snapshot.Signed.Version = 2
	r.writeSnapshot()
	r.timestamp.Signed.Version = 2
	r.writeTimestamp(2, -1)

	cache := t.TempDir()
	res := r.client(dir, cache, "")
	wantOK(t, res)
	if res.Versions["snapshot"] != 2 {
		t.Fatalf("client trusts snapshot %d, want 2", res.Versions["snapshot"])
	}

	r.timestamp.Signed.Version = 3
	r.writeTimestamp(1, -1)
	// A client that never saw snapshot 2 has nothing to compare with.
	wantOK(t, r.client(dir, t.TempDir(), ""))
	wantRefused(t, r.client(dir, cache, ""), "BadVersionError", "snapshot version 1 is less than current version 2")
}

// TestAlteredTarget: the server's copy of a target differs from what
// targets.json lists.
func TestAlteredTarget(t *testing.T) {
	dir := install(t)
	img := payload(64 << 10)
	sum := sha256.Sum256(img)
	stored := filepath.Join("targets", hex.EncodeToString(sum[:])+".camrec-8.0.0.img")
	for _, tc := range []struct {
		name, want, about string
		alter             func([]byte) []byte
	}{
		{"same length, one byte changed", "LengthOrHashMismatchError", "Expected hash",
			func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"shorter", "LengthOrHashMismatchError", "Expected length",
			func(b []byte) []byte { return b[:len(b)-1] }},
		{"longer", "DownloadLengthMismatchError", "Max length",
			func(b []byte) []byte { return append(b, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			r.addTarget("camrec-8.0.0.img", img)
			r.publish()
			wantOK(t, r.client(dir, t.TempDir(), "camrec-8.0.0.img"))

			r.write(stored, tc.alter(append([]byte(nil), img...)))
			wantRefused(t, r.client(dir, t.TempDir(), "camrec-8.0.0.img"), tc.want, tc.about)
		})
	}
}

// TestBelowThreshold: root asks two timestamp signatures; a timestamp with
// one of them is refused, with both accepted.
func TestBelowThreshold(t *testing.T) {
	dir := install(t)
	r := newRepo(t)
	r.addKey(metadata.TIMESTAMP)
	r.root.Signed.Roles[metadata.TIMESTAMP].Threshold = 2
	r.publish()
	wantOK(t, r.client(dir, t.TempDir(), ""))

	r.timestamp.Signed.Version = 2
	r.writeTimestamp(1, 1)
	wantRefused(t, r.client(dir, t.TempDir(), ""), "UnsignedMetadataError", "timestamp was signed by 1/2 keys")
}
