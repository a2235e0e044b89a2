// Package repoclient is the box's side of a release repository (a vendor's
// or a mirror's): it verifies the repository's TUF metadata from the root
// baked into the rescue image, remembers the newest metadata it has seen
// so that an older one is refused, reads the policy, and streams targets
// to files, resumable, checked against their signed length and hash.
//
// Metadata goes through go-tuf's updater, with passeur's own bounded HTTP
// fetcher; targets never do (go-tuf's downloader holds a whole file in
// memory): they are fetched by image/fetch and hashed on disk.
package repoclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
)

// Errors a caller may branch on: each names what TUF refused.
var (
	ErrExpired   = errors.New("repository metadata expired")
	ErrRollback  = errors.New("repository metadata older than what this box has seen")
	ErrSignature = errors.New("repository metadata not signed by its keys' threshold")
	ErrHash      = errors.New("file differs from its signed length or hash")
	ErrNoTarget  = errors.New("not a target of the repository")
	ErrMetadata  = errors.New("repository metadata refused")
)

// Options tune Open.
type Options struct {
	// URL is the repository's base: its metadata is under URL/metadata/,
	// its targets under URL/targets/.
	URL string
	// Root is the trusted root the chain of roots starts from: the one
	// baked into the rescue image, never one read from the media.
	Root []byte
	// State is the folder where the box remembers the metadata it has
	// trusted and the newest time it has seen signed (seen.json). Older
	// metadata than it holds is refused. A forged file there can only make
	// the box refuse, never accept, metadata.
	State string
	// Floor is a time known to have passed (the rescue image's build): the
	// reference time for expiry is the latest of the clock, Floor and the
	// newest timestamp seen, for boxes without a battery clock.
	Floor time.Time
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fetch are the HTTP client and retries of every download.
	Fetch fetch.Options
}

// Client is a repository whose metadata was verified.
type Client struct {
	opt Options
	up  *updater.Updater
	// Reference is the time expiry was checked against.
	Reference time.Time
	// Issued is when the timestamp trusted now was signed.
	Issued time.Time

	roots map[int64][]byte // the chain of roots verified, by version
}

// SeenFile is the file of a box's repository state that holds the newest
// timestamp it verified, as signed: the time it says it was issued is a
// floor of the time only while the root's timestamp keys sign it (a
// rotation after a stolen key signed a time far ahead resets it), and a
// file that does not verify, made by anyone with a disk, gives none.
const SeenFile = "seen.json"

const (
	rootsDir = "roots" // every root this box verified, N.root.json
	// maxIssuedAhead bounds how far before its expiry a timestamp may say
	// it was signed for the box to take that time as a floor.
	maxIssuedAhead = 400 * 24 * time.Hour
	maxRoots       = 64
)

// Open verifies the repository's metadata: the chain of roots from
// opt.Root, then the timestamp, snapshot and top-level targets, none older
// than what opt.State holds and none expired at the reference time.
func Open(ctx context.Context, opt Options) (*Client, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	opt.URL = strings.TrimSuffix(opt.URL, "/")
	md := filepath.Join(opt.State, "metadata")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return nil, err
	}
	// The chain of roots this box verified before, from the baked one: a
	// server that withholds the newer roots cannot take it back to an
	// older one (and to keys since revoked). A file that does not chain
	// ends it there.
	chain, err := trustedmetadata.New(opt.Root)
	if err != nil {
		return nil, fmt.Errorf("%w: trusted root: %w", ErrMetadata, err)
	}
	roots := map[int64][]byte{chain.Root.Signed.Version: opt.Root}
	newest := opt.Root
	for v := chain.Root.Signed.Version + 1; v <= chain.Root.Signed.Version+maxRoots; v++ {
		data, err := readBounded(filepath.Join(opt.State, rootsDir, fmt.Sprintf("%d.root.json", v)), repo.MaxRootBytes)
		if err != nil {
			break
		}
		if _, err := chain.UpdateRoot(data); err != nil {
			break
		}
		roots[v], newest = data, data
	}
	// Then the newer roots the server has, each signed by the one before:
	// the box knows the final root's timestamp keys before it chooses the
	// time expiry is checked against.
	f := &fetcher{ctx: ctx, o: opt.Fetch, tmp: md}
	for v := chain.Root.Signed.Version + 1; v <= chain.Root.Signed.Version+maxRoots; v++ {
		data, err := f.DownloadFile(fmt.Sprintf("%s/%s/%d.root.json", opt.URL, repo.MetadataDir, v), repo.MaxRootBytes, 0)
		var he *metadata.ErrDownloadHTTP
		if errors.As(err, &he) && he.StatusCode == http.StatusNotFound {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", opt.URL, named(err))
		}
		if _, err := chain.UpdateRoot(data); err != nil {
			return nil, fmt.Errorf("repository %s: root %d: %w", opt.URL, v, named(err))
		}
		roots[v], newest = data, data
	}
	seenData, seenAt, _ := newestSeen(chain.Root, filepath.Join(opt.State, SeenFile))
	ref := opt.Now().UTC()
	if t := opt.Floor; t.After(ref) {
		ref = t.UTC()
	}
	if seenAt.After(ref) {
		ref = seenAt.UTC()
	}
	cfg, err := config.New(opt.URL+"/"+repo.MetadataDir+"/", newest)
	if err != nil {
		return nil, fmt.Errorf("%w: trusted root: %w", ErrMetadata, err)
	}
	cfg.LocalMetadataDir = md
	cfg.LocalTargetsDir = filepath.Join(opt.State, "unused-targets")
	cfg.RemoteTargetsURL = opt.URL + "/" + repo.TargetsDir + "/"
	cfg.Fetcher = f
	cfg.RootMaxLength = repo.MaxRootBytes
	cfg.TimestampMaxLength = repo.MaxTimestampBytes
	cfg.SnapshotMaxLength = repo.MaxSnapshotBytes
	cfg.TargetsMaxLength = repo.MaxTargetsBytes
	cfg.MaxDelegations = 8
	cfg.MaxRootRotations = 64
	up, err := updater.New(cfg)
	if err != nil {
		return nil, named(err)
	}
	up.UnsafeSetRefTime(ref)
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("repository %s: %w", opt.URL, named(err))
	}
	trusted := up.GetTrustedMetadataSet()
	final := trusted.Root.Signed.Version
	if err := os.MkdirAll(filepath.Join(opt.State, rootsDir), 0o755); err != nil {
		return nil, err
	}
	for name, data := range f.roots {
		var v int64
		if _, err := fmt.Sscanf(name, "%d.root.json", &v); err == nil && v <= final && roots[v] == nil {
			roots[v] = data // verified by the updater's walk
		}
	}
	for v, data := range roots {
		p := filepath.Join(opt.State, rootsDir, fmt.Sprintf("%d.root.json", v))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := atomicfile.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
	}
	c := &Client{opt: opt, up: up, Reference: ref, roots: roots}
	if t, ok := issued(trusted.Timestamp); ok {
		c.Issued = t
		if t.After(seenAt) {
			// The timestamp just verified, as the updater kept it.
			if data, err := readBounded(filepath.Join(md, metadata.TIMESTAMP+".json"), repo.MaxTimestampBytes); err == nil {
				seenData = data
			}
		}
	}
	if old, _ := os.ReadFile(filepath.Join(opt.State, SeenFile)); seenData != nil && !bytes.Equal(old, seenData) {
		if err := atomicfile.WriteFile(filepath.Join(opt.State, SeenFile), seenData, 0o644); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// newestSeen reads remembered timestamps (SeenFile's) and returns the one
// the root's timestamp role signs with the latest issue time, that time,
// and its index in paths; nil, zero time and -1 when none verifies.
func newestSeen(root *metadata.Metadata[metadata.RootType], paths ...string) ([]byte, time.Time, int) {
	var best []byte
	var at time.Time
	idx := -1
	for i, p := range paths {
		data, err := readBounded(p, repo.MaxTimestampBytes)
		if err != nil {
			continue
		}
		ts, err := metadata.Timestamp().FromBytes(data)
		if err != nil || root.VerifyDelegate(metadata.TIMESTAMP, ts) != nil {
			continue // made by anyone, or signed by keys since rotated
		}
		if t, ok := issued(ts); ok && t.After(at) {
			best, at, idx = data, t, i
		}
	}
	return best, at, idx
}

// issued is the time a timestamp says it was signed, when it says one no
// later than its expiry, nor too far before it: a clock gone wrong at the
// vendor's does not freeze boxes.
func issued(ts *metadata.Metadata[metadata.TimestampType]) (time.Time, bool) {
	v, ok := ts.Signed.UnrecognizedFields[repo.IssuedField].(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil || t.After(ts.Signed.Expires) || ts.Signed.Expires.Sub(t) > maxIssuedAhead {
		return time.Time{}, false
	}
	return t, true
}

// named wraps a go-tuf error in passeur's name for it.
func named(err error) error {
	for _, m := range []struct {
		tuf, ours error
	}{
		{&metadata.ErrExpiredMetadata{}, ErrExpired},
		{&metadata.ErrBadVersionNumber{}, ErrRollback},
		{&metadata.ErrUnsignedMetadata{}, ErrSignature},
		{&metadata.ErrLengthOrHashMismatch{}, ErrHash},
		{&metadata.ErrDownloadLengthMismatch{}, ErrHash},
	} {
		if errors.Is(err, m.tuf) {
			return fmt.Errorf("%w: %w", m.ours, err)
		}
	}
	return fmt.Errorf("%w: %w", ErrMetadata, err)
}

// Products lists the products the repository publishes.
func (c *Client) Products() []string {
	seen := map[string]bool{}
	var out []string
	for p := range c.up.GetTopLevelTargets() {
		if prod, _, ok := repo.ParseManifestTarget(p); ok && !seen[prod] {
			seen[prod] = true
			out = append(out, prod)
		}
	}
	return out
}

// Catalog is what the repository publishes of product, with its policy.
func (c *Client) Catalog(product string) (*repo.Catalog, error) {
	return repo.CatalogOf(c.up.GetTopLevelTargets(), customOf, product)
}

// Account is an account's policy for product, signed by the account's
// delegated role. An account the repository does not delegate is
// repo.ErrUnknown.
func (c *Client) Account(account, product string) (*repo.Account, error) {
	if err := repo.CheckAccount(account); err != nil {
		return nil, err
	}
	if !c.delegates(repo.AccountRole(account)) {
		return nil, fmt.Errorf("account %s: %w", account, repo.ErrUnknown)
	}
	tf, err := c.up.GetTargetInfo(repo.AccountTarget(account, product))
	if err != nil {
		var nf interface{ Unwrap() error }
		if !errors.As(err, &nf) && strings.HasSuffix(err.Error(), " not found") {
			return &repo.Account{}, nil // the account sets nothing for product
		}
		return nil, named(err)
	}
	a, err := repo.ParseCustom(tf.Custom, (*repo.Account).Check)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// delegates reports whether the top-level targets delegate role.
func (c *Client) delegates(role string) bool {
	t := c.up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	if t == nil || t.Signed.Delegations == nil {
		return false
	}
	for _, r := range t.Signed.Delegations.Roles {
		if r.Name == role {
			return true
		}
	}
	return false
}

// Target is a target's signed length and hashes. A path that is not a
// clean relative path of safe names is refused, signed or not: it names a
// file on the media and in a mirror.
func (c *Client) Target(target string) (*metadata.TargetFiles, error) {
	if err := SafePath(target); err != nil {
		return nil, err
	}
	tf, err := c.up.GetTargetInfo(target)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", target, ErrNoTarget, err)
	}
	if len(tf.Hashes["sha256"]) != sha256.Size {
		return nil, fmt.Errorf("%s: %w: no sha256", target, ErrHash)
	}
	return tf, nil
}

// URL is where a target's bytes are: its folder, then its SHA-256 and its
// name (consistent snapshots).
func (c *Client) URL(tf *metadata.TargetFiles) string {
	dir, base := path.Split(tf.Path)
	return c.opt.URL + "/" + repo.TargetsDir + "/" + dir + hex.EncodeToString(tf.Hashes["sha256"]) + "." + base
}

// Download brings a target to dst: resumed where an earlier attempt
// stopped, bounded by its signed length, and kept only if its SHA-256 is
// the signed one (ErrHash, dst removed).
func (c *Client) Download(ctx context.Context, target, dst string, o fetch.Options) (fetch.Result, error) {
	tf, err := c.Target(target)
	if err != nil {
		return fetch.Result{}, err
	}
	o.Size = tf.Length
	res, err := fetch.File(ctx, c.URL(tf), dst, o)
	if errors.Is(err, fetch.ErrSize) || errors.Is(err, fetch.ErrShort) || errors.Is(err, fetch.ErrTooLarge) {
		return res, fmt.Errorf("%w: %w", ErrHash, err)
	}
	if err != nil {
		return res, err
	}
	if err := Verify(tf, dst); err != nil {
		os.Remove(dst)
		return res, err
	}
	return res, nil
}

// Verify checks a file against its target's signed length and SHA-256.
func Verify(tf *metadata.TargetFiles, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, tf.Length+1))
	if err != nil {
		return err
	}
	if n != tf.Length || !bytes.Equal(h.Sum(nil), tf.Hashes["sha256"]) {
		return fmt.Errorf("%w: %s (%d bytes)", ErrHash, tf.Path, n)
	}
	return nil
}

// fetcher is go-tuf's way to passeur's downloads: a metadata file goes to
// a temporary file through fetch.File (bounded, retried) and is read back.
type fetcher struct {
	ctx   context.Context
	o     fetch.Options
	tmp   string
	roots map[string][]byte // every N.root.json downloaded, by name
}

func (f *fetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	o := f.o
	o.Size, o.Limit, o.Progress = 0, maxLength, nil
	p := filepath.Join(f.tmp, "download.tmp")
	os.Remove(p)
	os.Remove(p + ".part")
	defer os.Remove(p)
	if _, err := fetch.File(f.ctx, url, p, o); err != nil {
		var se *fetch.StatusError
		if errors.As(err, &se) {
			code := se.Code
			if code == http.StatusForbidden && strings.HasSuffix(url, ".root.json") {
				code = http.StatusNotFound // object stores answer 403 for a file that is not there
			}
			return nil, &metadata.ErrDownloadHTTP{StatusCode: code, URL: url}
		}
		if errors.Is(err, fetch.ErrTooLarge) {
			return nil, &metadata.ErrDownloadLengthMismatch{Msg: err.Error()}
		}
		return nil, err
	}
	data, err := readBounded(p, maxLength)
	if err == nil && strings.HasSuffix(url, ".root.json") {
		if f.roots == nil {
			f.roots = map[string][]byte{}
		}
		f.roots[path.Base(url)] = data
	}
	return data, err
}

func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than %d bytes", p, limit)}
	}
	return data, nil
}

// Metadata is the repository's metadata this client verified, byte for
// byte, under the names a repository serves it by: every root of the chain
// from the trusted one (N.root.json), N.snapshot.json, N.targets.json,
// N.<role>.json of each delegated role it loaded, and timestamp.json. A
// mirror serves exactly these.
func (c *Client) Metadata() (map[string][]byte, error) {
	out := map[string][]byte{}
	for v, data := range c.roots {
		out[fmt.Sprintf("%d.root.json", v)] = data
	}
	trusted := c.up.GetTrustedMetadataSet()
	md := filepath.Join(c.opt.State, "metadata")
	ents, err := os.ReadDir(md)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		role, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || role == metadata.ROOT || !e.Type().IsRegular() {
			continue
		}
		data, err := readBounded(filepath.Join(md, e.Name()), repo.MaxTargetsBytes)
		if err != nil {
			return nil, err
		}
		if role == metadata.TIMESTAMP {
			out["timestamp.json"] = data
			continue
		}
		var v int64
		switch {
		case role == metadata.SNAPSHOT && trusted.Snapshot != nil:
			v = trusted.Snapshot.Signed.Version
		case trusted.Targets[role] != nil:
			v = trusted.Targets[role].Signed.Version
		default:
			continue // cached from an earlier run, not verified by this one
		}
		out[fmt.Sprintf("%d.%s.json", v, role)] = data
	}
	return out, nil
}

// Targets lists the targets of the top-level role under prefix ("camrec/8.1.0/").
func (c *Client) Targets(prefix string) []*metadata.TargetFiles {
	var out []*metadata.TargetFiles
	for p, tf := range c.up.GetTopLevelTargets() {
		if strings.HasPrefix(p, prefix) && SafePath(p) == nil {
			tf.Path = p
			out = append(out, tf)
		}
	}
	// In path order: what a mirror downloads, logs and resumes is the
	// same from one run to the next.
	slices.SortFunc(out, func(a, b *metadata.TargetFiles) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// customOf is a target's custom metadata, nil for none.
func customOf(tf *metadata.TargetFiles) *json.RawMessage {
	if tf == nil {
		return nil
	}
	return tf.Custom
}

// SafePath refuses a target path that is not clean, relative, and made of
// safe names ([A-Za-z0-9] then [A-Za-z0-9._-]): no "..", no empty part.
func SafePath(p string) error {
	if p == "" || path.Clean(p) != p || path.IsAbs(p) {
		return fmt.Errorf("%w: target path %q is not clean and relative", ErrNoTarget, p)
	}
	for _, part := range strings.Split(p, "/") {
		if err := release.CheckName("target path part", part); err != nil {
			return fmt.Errorf("%w: %w", ErrNoTarget, err)
		}
	}
	return nil
}
