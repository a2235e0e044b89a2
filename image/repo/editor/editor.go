// Package editor is the vendor's side of a release repository: it creates
// one, publishes releases into it, moves tags and account defaults, sets
// barriers, dead ends and rollouts, rotates keys, and signs what changed.
// Each change is checked first and written by Commit in the order a reader
// needs: the files, then the new root, the targets, the snapshot, and the
// timestamp last, so a client reading during a commit sees the old
// repository or the new one.
package editor

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/repo"
)

// Options tune a repository's editor.
type Options struct {
	// Now is the clock (default time.Now): tests move it.
	Now func() time.Time
	// Lifetimes of each role's metadata from its signing (defaults: root
	// and targets a year, snapshot 30 days, timestamp 7 days: the vendor
	// runs `passeur repo refresh` more often than that).
	Root, Targets, Snapshot, Timestamp time.Duration
}

func (o *Options) fill() {
	if o.Now == nil {
		o.Now = time.Now
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&o.Root, 365 * 24 * time.Hour}, {&o.Targets, 365 * 24 * time.Hour}, {&o.Snapshot, 30 * 24 * time.Hour}, {&o.Timestamp, 7 * 24 * time.Hour}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

// Errors a caller may branch on.
var (
	ErrExists   = errors.New("already in the repository")
	ErrNotRepo  = errors.New("not a passeur repository")
	ErrConflict = errors.New("the repository holds other bytes under this name")
)

// Repo is a repository open for changes.
type Repo struct {
	Dir, Keys string
	opt       Options

	root      *metadata.Metadata[metadata.RootType]
	targets   map[string]*metadata.Metadata[metadata.TargetsType] // "targets" and account roles
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]

	rootChanged bool
	rootSigners []*key // the keys of the root before this change, which must sign the new one
	changed     map[string]bool
	files       []pending       // target files to store
	keys        map[string]*key // keys loaded or made, by role
	newKeys     []*key          // keys made, which Commit writes first
	retired     []*key          // keys replaced, which Commit moves aside
}

// pending is a target's file to store: a copy of src, or data, whose
// SHA-256 must be sum (the bytes signed).
type pending struct {
	src  string
	data []byte
	sum  []byte
	dst  string
}

// key is a role's signing key: one made by this change, or the keys
// folder's.
func (r *Repo) key(role string) (*key, error) {
	if k := r.keys[role]; k != nil {
		return k, nil
	}
	k, err := loadKey(r.Keys, role)
	if err != nil {
		return nil, err
	}
	// A commit cut after its metadata and before its keys took their
	// names: the new key is the one the repository lists.
	if !r.lists(role, k.id) {
		if nk, err := loadKeyFile(keyPath(r.Keys, role)+newSuffix, role); err == nil && r.lists(role, nk.id) {
			k = nk
		}
	}
	r.keys[role] = k
	return k, nil
}

// lists reports whether the repository as loaded lists key id for role.
func (r *Repo) lists(role, id string) bool {
	if rr := r.root.Signed.Roles[role]; rr != nil {
		return slices.Contains(rr.KeyIDs, id)
	}
	if d := r.targets[metadata.TARGETS].Signed.Delegations; d != nil {
		for _, dr := range d.Roles {
			if dr.Name == role {
				return slices.Contains(dr.KeyIDs, id)
			}
		}
	}
	return true // a role the repository does not list yet: being made
}

// makeKey makes a new key for role, replacing the one it had.
func (r *Repo) makeKey(role string) (*key, error) {
	if old, err := r.key(role); err == nil {
		r.retired = append(r.retired, old)
	}
	k, err := genKey(role)
	if err != nil {
		return nil, err
	}
	r.keys[role] = k
	r.newKeys = append(r.newKeys, k)
	return k, nil
}

// Init creates an empty repository in dir, with a new key for each role in
// keys (which must not hold them yet).
func Init(dir, keys string, opt Options) (*Repo, error) {
	opt.fill()
	if _, err := os.Stat(filepath.Join(dir, repo.MetadataDir, "1.root.json")); err == nil {
		return nil, fmt.Errorf("%s: %w", dir, ErrExists)
	}
	now := opt.Now().UTC()
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if _, err := os.Stat(keyPath(keys, role)); err == nil {
			return nil, fmt.Errorf("%s: a key is already there: a new repository makes its own", keyPath(keys, role))
		}
	}
	r := &Repo{Dir: dir, Keys: keys, opt: opt, changed: map[string]bool{}, rootChanged: true, keys: map[string]*key{},
		root:      metadata.Root(now.Add(opt.Root)),
		targets:   map[string]*metadata.Metadata[metadata.TargetsType]{metadata.TARGETS: metadata.Targets(now.Add(opt.Targets))},
		snapshot:  metadata.Snapshot(now.Add(opt.Snapshot)),
		timestamp: metadata.Timestamp(now.Add(opt.Timestamp)),
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		k, err := r.makeKey(role)
		if err != nil {
			return nil, err
		}
		if err := r.root.Signed.AddKey(k.pub, role); err != nil {
			return nil, err
		}
	}
	// Version 1 of each: Commit counts from 0 for what it writes anew.
	r.root.Signed.Version = 0
	r.targets[metadata.TARGETS].Signed.Version = 0
	r.snapshot.Signed.Version = 0
	r.timestamp.Signed.Version = 0
	r.changed[metadata.TARGETS] = true
	return r, nil
}

var rootName = regexp.MustCompile(`^([1-9][0-9]{0,9})\.root\.json$`)

// Open reads the repository in dir as it was last committed.
func Open(dir, keys string, opt Options) (*Repo, error) {
	opt.fill()
	md := filepath.Join(dir, repo.MetadataDir)
	entries, err := os.ReadDir(md)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", dir, ErrNotRepo, err)
	}
	var last int64
	for _, e := range entries {
		if m := rootName.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			last = max(last, n)
		}
	}
	if last == 0 {
		return nil, fmt.Errorf("%s: %w: no N.root.json", dir, ErrNotRepo)
	}
	r := &Repo{Dir: dir, Keys: keys, opt: opt, changed: map[string]bool{}, keys: map[string]*key{}, targets: map[string]*metadata.Metadata[metadata.TargetsType]{}}
	if r.root, err = metadata.Root().FromFile(filepath.Join(md, fmt.Sprintf("%d.root.json", last))); err != nil {
		return nil, err
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(md, "timestamp.json")); err != nil {
		return nil, err
	}
	sm := r.timestamp.Signed.Meta["snapshot.json"]
	if sm == nil {
		return nil, fmt.Errorf("%s: %w: the timestamp names no snapshot", dir, ErrNotRepo)
	}
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(md, fmt.Sprintf("%d.snapshot.json", sm.Version))); err != nil {
		return nil, err
	}
	for name, m := range r.snapshot.Signed.Meta {
		role := name[:len(name)-len(".json")]
		t, err := metadata.Targets().FromFile(filepath.Join(md, fmt.Sprintf("%d.%s", m.Version, name)))
		if err != nil {
			return nil, err
		}
		r.targets[role] = t
	}
	if r.targets[metadata.TARGETS] == nil {
		return nil, fmt.Errorf("%s: %w: the snapshot names no targets", dir, ErrNotRepo)
	}
	if err := r.verify(last); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", dir, ErrTampered, err)
	}
	return r, nil
}

// ErrTampered is a repository folder whose metadata does not verify: the
// editor would otherwise sign again what someone else wrote there.
var ErrTampered = errors.New("the repository's metadata does not verify")

// pinFile, in the keys folder, is the repository's first root as init
// wrote it: the chain the editor verifies starts there.
const pinFile = "1.root.json"

// verify checks the folder before the editor signs anything again: the
// chain of roots from the pinned first one, then, under the last root, the
// snapshot, the targets and every account's role, each by its signatures
// and threshold; expiry aside (a refresh must be possible after a lapse).
// The timestamp is not held to it: the editor signs a new one at every
// commit, and one signed by a key a rotation cut off before its end must
// not lock the vendor out.
func (r *Repo) verify(last int64) error {
	md := filepath.Join(r.Dir, repo.MetadataDir)
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(md, name)) }
	first, err := read("1.root.json")
	if err != nil {
		return err
	}
	if pin, err := os.ReadFile(filepath.Join(r.Keys, pinFile)); err == nil && !bytes.Equal(pin, first) {
		return fmt.Errorf("1.root.json is not the root %s pins", filepath.Join(r.Keys, pinFile))
	}
	tm, err := trustedmetadata.New(first)
	if err != nil {
		return err
	}
	for v := int64(2); v <= last; v++ {
		data, err := read(fmt.Sprintf("%d.root.json", v))
		if err != nil {
			return err
		}
		if _, err := tm.UpdateRoot(data); err != nil {
			return fmt.Errorf("root %d: %w", v, err)
		}
	}
	root := tm.Root
	if err := root.VerifyDelegate(metadata.SNAPSHOT, r.snapshot); err != nil {
		return fmt.Errorf("snapshot %d: %w", r.snapshot.Signed.Version, err)
	}
	top := r.targets[metadata.TARGETS]
	if err := root.VerifyDelegate(metadata.TARGETS, top); err != nil {
		return fmt.Errorf("targets %d: %w", top.Signed.Version, err)
	}
	for role, t := range r.targets {
		if role == metadata.TARGETS {
			continue
		}
		if err := top.VerifyDelegate(role, t); err != nil {
			return fmt.Errorf("%s %d: %w", role, t.Signed.Version, err)
		}
	}
	return nil
}

// Root is the repository's current root metadata, as a box trusts it.
func (r *Repo) Root() ([]byte, error) { return r.root.ToBytes(true) }

// Targets is a targets role's metadata ("targets" or an account's role).
func (r *Repo) Targets(role string) *metadata.TargetsType {
	if t := r.targets[role]; t != nil {
		return &t.Signed
	}
	return nil
}

// Commit signs and writes what changed: target files first, then the root,
// the targets roles, the snapshot, the timestamp last. It is Refresh when
// nothing else changed.
func (r *Repo) Commit() error {
	now := r.opt.Now().UTC()
	md := filepath.Join(r.Dir, repo.MetadataDir)
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	for _, k := range r.newKeys {
		if err := k.save(r.Keys); err != nil {
			return err
		}
	}
	for _, f := range r.files {
		if err := storeFile(f); err != nil {
			return err
		}
	}
	r.files = nil
	// What comes within half its lifetime of expiring is signed again: a
	// refresh from cron keeps every role valid, the root and the targets
	// too (their keys must then be at hand).
	if r.root.Signed.Expires.Before(now.Add(r.opt.Root / 2)) {
		r.rootChanged = true
	}
	for role, t := range r.targets {
		if t.Signed.Expires.Before(now.Add(r.opt.Targets / 2)) {
			r.changed[role] = true
		}
	}
	if r.rootChanged {
		r.root.Signed.Version++
		r.root.Signed.Expires = now.Add(r.opt.Root)
		r.root.ClearSignatures()
		keys, err := r.roleKeys(metadata.ROOT)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, k := range append(append([]*key{}, r.rootSigners...), keys...) {
			if seen[k.id] {
				continue
			}
			seen[k.id] = true
			if err := signWith(r.root, k); err != nil {
				return err
			}
		}
		if err := write(r.root, filepath.Join(md, fmt.Sprintf("%d.root.json", r.root.Signed.Version))); err != nil {
			return err
		}
		if r.root.Signed.Version == 1 {
			data, err := os.ReadFile(filepath.Join(md, "1.root.json"))
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(filepath.Join(r.Keys, pinFile), data, 0o600); err != nil {
				return err
			}
		}
		r.rootChanged, r.rootSigners = false, nil
	}
	var roles []string
	for role := range r.changed {
		roles = append(roles, role)
	}
	sort.Strings(roles)
	for _, role := range roles {
		t := r.targets[role]
		t.Signed.Version++
		t.Signed.Expires = now.Add(r.opt.Targets)
		t.ClearSignatures()
		k, err := r.key(role)
		if err != nil {
			return err
		}
		if err := signWith(t, k); err != nil {
			return err
		}
		if err := write(t, filepath.Join(md, fmt.Sprintf("%d.%s.json", t.Signed.Version, role))); err != nil {
			return err
		}
		r.snapshot.Signed.Meta[role+".json"] = metadata.MetaFile(t.Signed.Version)
	}
	r.changed = map[string]bool{}
	for name := range r.snapshot.Signed.Meta {
		if r.targets[name[:len(name)-len(".json")]] == nil {
			delete(r.snapshot.Signed.Meta, name)
		}
	}
	r.snapshot.Signed.Version++
	r.snapshot.Signed.Expires = now.Add(r.opt.Snapshot)
	snapName := fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version)
	if err := r.signTop(r.snapshot, metadata.SNAPSHOT, filepath.Join(md, snapName)); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(md, snapName))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	snapFile := metadata.MetaFile(r.snapshot.Signed.Version)
	snapFile.Length = int64(len(data))
	snapFile.Hashes = metadata.Hashes{"sha256": sum[:]}
	r.timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": snapFile}
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = now.Add(r.opt.Timestamp)
	if r.timestamp.Signed.UnrecognizedFields == nil {
		r.timestamp.Signed.UnrecognizedFields = map[string]any{}
	}
	r.timestamp.Signed.UnrecognizedFields[repo.IssuedField] = now.Format(time.RFC3339)
	if err := r.signTop(r.timestamp, metadata.TIMESTAMP, filepath.Join(md, "timestamp.json")); err != nil {
		return err
	}
	// The repository now names the new keys: they take their roles' names,
	// the old ones kept aside.
	for _, k := range r.retired {
		if err := retire(r.Keys, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, k := range r.newKeys {
		if err := k.install(r.Keys); err != nil {
			return err
		}
	}
	r.retired, r.newKeys = nil, nil
	return nil
}

// roleKeys loads the keys of a top-level role the root lists.
func (r *Repo) roleKeys(role string) ([]*key, error) {
	k, err := r.key(role)
	if err != nil {
		return nil, err
	}
	for _, id := range r.root.Signed.Roles[role].KeyIDs {
		if id == k.id {
			return []*key{k}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s holds a key the root does not list for %s", ErrNoKey, keyPath(r.Keys, role), role)
}

func (r *Repo) signTop(m interface {
	ClearSignatures()
	ToBytes(bool) ([]byte, error)
}, role, path string) error {
	keys, err := r.roleKeys(role)
	if err != nil {
		return err
	}
	m.ClearSignatures()
	for _, k := range keys {
		if err := signAny(m, k); err != nil {
			return err
		}
	}
	return writeAny(m, path)
}

type signable interface {
	ClearSignatures()
	ToBytes(bool) ([]byte, error)
}

func signWith[T metadata.Roles](m *metadata.Metadata[T], k *key) error { return signAny(m, k) }

func signAny(m signable, k *key) error {
	s, err := k.signer()
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case *metadata.Metadata[metadata.RootType]:
		_, err = m.Sign(s)
	case *metadata.Metadata[metadata.TargetsType]:
		_, err = m.Sign(s)
	case *metadata.Metadata[metadata.SnapshotType]:
		_, err = m.Sign(s)
	case *metadata.Metadata[metadata.TimestampType]:
		_, err = m.Sign(s)
	default:
		err = fmt.Errorf("cannot sign %T", m)
	}
	return err
}

func write[T metadata.Roles](m *metadata.Metadata[T], path string) error { return writeAny(m, path) }

func writeAny(m signable, path string) error {
	data, err := m.ToBytes(true)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// storeFile copies a target's file into the repository, unless the same
// bytes are there already (its name carries their hash).
func storeFile(f pending) error {
	dst := f.dst
	if sum, err := fileSum(dst); err == nil && bytes.Equal(sum, f.sum) {
		return nil // there already, whole
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if f.src == "" {
		return atomicfile.WriteFile(dst, f.data, 0o644)
	}
	in, err := os.Open(f.src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return err
	}
	if !bytes.Equal(h.Sum(nil), f.sum) {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("%w: %s changed since it was verified", ErrConflict, f.src)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return atomicfile.Rename(tmp, dst)
}

// fileSum is the SHA-256 of a file's bytes.
func fileSum(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
