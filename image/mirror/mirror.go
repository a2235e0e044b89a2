// Package mirror is the customer's local repository server, which goes
// first: it verifies the vendor's repository as a box would (TUF, from a
// trusted root given out of band), keeps a complete verified copy of what
// its account's boxes may be sent to, and is served by passeur serve like
// any repository. Boxes reading it during a sync see the state before or
// after, never a mix; a box whose account default is not on the mirror
// yet waits, and says why.
package mirror

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/version"
)

// File is the mirror's own record at its root, beside metadata/ and
// targets/: what it holds for its account. It is not signed (the mirror has
// no key of the vendor's): a forged one can only make boxes wait.
const File = "mirror.json"

// MaxFileBytes bounds the record a box reads.
const MaxFileBytes = 64 << 10

// Record is mirror.json.
type Record struct {
	Format   int       `json:"format"`
	Upstream string    `json:"upstream"`
	Account  string    `json:"account"`
	Tag      string    `json:"tag,omitempty"`
	Product  string    `json:"product"`
	Default  string    `json:"default"`            // the account's default when it synced
	Versions []string  `json:"versions"`           // every version it holds, oldest first
	Halted   bool      `json:"halted,omitempty"`   // its fleet halted the rollout of Default
	Synced   time.Time `json:"synced"`             // the mirror's clock
	Issued   time.Time `json:"issued,omitempty"`   // the vendor's timestamp it serves
	Snapshot int64     `json:"snapshot,omitempty"` // the snapshot version it serves
}

// Holds reports whether the mirror holds version v.
func (r *Record) Holds(v string) bool {
	for _, x := range r.Versions {
		if x == v {
			return true
		}
	}
	return false
}

// ErrBehind is a box's version not on its mirror yet.
var ErrBehind = errors.New("the local repository server does not hold this version yet: the box waits for it to sync")

// ParseRecord reads a mirror.json, strictly.
func ParseRecord(data []byte) (*Record, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", File, len(data), MaxFileBytes)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", File, err)
	}
	if r.Format != 1 {
		return nil, fmt.Errorf("%s: format %d, this passeur reads 1", File, r.Format)
	}
	for _, v := range r.Versions {
		if _, err := repo.CheckVersion(v); err != nil {
			return nil, fmt.Errorf("%s: %w", File, err)
		}
	}
	return &r, nil
}

// Options say what to sync.
type Options struct {
	Upstream string // the vendor's repository URL
	Root     []byte // the vendor's trusted root, given out of band
	Account  string
	Tag      string // an account's test tag to hold too ("" for none)
	Dir      string // the mirror's folder, served as a repository
	// State is where the mirror remembers the vendor's metadata it
	// verified (default: Dir + ".state", beside the served folder).
	State string
	Fetch fetch.Options
	Log   func(format string, args ...any)
	// BeforeSwitch, when set, runs once every new file is written and
	// before the timestamp makes them the mirror's state (tests read the
	// mirror there).
	BeforeSwitch func()
}

// Result says what a sync did.
type Result struct {
	Record Record
	Files  int   // targets downloaded
	Bytes  int64 // their bytes
	Kept   int   // targets already held
	// Removed counts the files neither this state nor the one before it
	// serves, removed.
	Removed int
}

// Sync brings the mirror to the vendor's current state for its account:
// the metadata verified, every version the account's boxes may be sent to
// downloaded and checked (its default, its rollout's previous default, the
// test tag's version, and every version a route to them passes through),
// then the switch: metadata by version, mirror.json, and timestamp.json
// last. A sync cut off resumes: what is whole is kept, what is partial
// resumes with Range.
func Sync(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.State == "" {
		o.State = strings.TrimSuffix(o.Dir, "/") + ".state"
	}
	if err := repo.CheckAccount(o.Account); err != nil {
		return nil, err
	}
	c, err := repoclient.Open(ctx, repoclient.Options{URL: o.Upstream, Root: o.Root, State: o.State, Fetch: o.Fetch})
	if err != nil {
		return nil, err
	}
	products := c.Products()
	if len(products) != 1 {
		return nil, fmt.Errorf("upstream %s publishes %d products (%s): a mirror serves one", o.Upstream, len(products), strings.Join(products, ", "))
	}
	product := products[0]
	cat, err := c.Catalog(product)
	if err != nil {
		return nil, err
	}
	acct, err := c.Account(o.Account, product)
	if err != nil {
		return nil, err
	}
	if acct.Default == "" {
		return nil, fmt.Errorf("account %s, %s: %w", o.Account, product, repo.ErrNoDefault)
	}
	named := []string{acct.Default}
	if acct.Rollout != nil {
		named = append(named, acct.Rollout.Previous)
	}
	if o.Tag != "" {
		v, ok := acct.Tags[o.Tag]
		if !ok {
			return nil, fmt.Errorf("account %s: %w %q", o.Account, repo.ErrUnknownTag, o.Tag)
		}
		named = append(named, v)
	}
	held, err := closure(cat, named)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	files := map[string]bool{} // what the new state serves, relative to Dir
	for _, v := range held {
		for _, tf := range c.Targets(product + "/" + v + "/") {
			if err := store(ctx, c, o, tf.Path, res, files); err != nil {
				return nil, err
			}
		}
	}
	// The rescue images of every board: what boxes staging an update
	// from their running system boot into.
	for _, tf := range c.Targets(repo.RescueDir + "/") {
		if err := store(ctx, c, o, tf.Path, res, files); err != nil {
			return nil, err
		}
	}
	for _, t := range []string{repo.TagsTarget(product), repo.AccountTarget(o.Account, product)} {
		if _, err := c.Target(t); err == nil {
			if err := store(ctx, c, o, t, res, files); err != nil {
				return nil, err
			}
		}
	}
	meta, err := c.Metadata()
	if err != nil {
		return nil, err
	}
	md := filepath.Join(o.Dir, repo.MetadataDir)
	if err := os.MkdirAll(md, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for name := range meta {
		if name != "timestamp.json" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := atomicfile.WriteFile(filepath.Join(md, name), meta[name], 0o644); err != nil {
			return nil, err
		}
		files[path.Join(repo.MetadataDir, name)] = true
	}
	res.Record = Record{Format: 1, Upstream: o.Upstream, Account: o.Account, Tag: o.Tag, Product: product, Default: acct.Default,
		Versions: held, Synced: time.Now().UTC(), Issued: c.Issued}
	if prev, err := os.ReadFile(filepath.Join(o.Dir, File)); err == nil {
		if r, err := ParseRecord(prev); err == nil {
			res.Record.Halted = r.Halted && r.Default == acct.Default // a halt holds for the default it stopped
		}
	}
	rec, _ := json.MarshalIndent(res.Record, "", "  ")
	if o.BeforeSwitch != nil {
		o.BeforeSwitch()
	}
	// mirror.json first: in the instant between the two, a box reads the
	// old metadata, whose versions the mirror still holds.
	if err := atomicfile.WriteFile(filepath.Join(o.Dir, File), append(rec, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(md, "timestamp.json"), meta["timestamp.json"], 0o644); err != nil {
		return nil, err
	}
	res.Removed, err = prune(o, files)
	if err != nil {
		return nil, err
	}
	o.Log("mirror %s: account %s holds %s %s (default %s); %d files downloaded (%d bytes), %d kept, %d removed",
		o.Dir, o.Account, product, strings.Join(held, ", "), acct.Default, res.Files, res.Bytes, res.Kept, res.Removed)
	return res, nil
}

// servedFile lists, in the mirror's state folder, the files the mirror's
// state serves; the sync after next removes what neither it nor the state
// before it serves.
const servedFile = "served.json"

// prune removes the files under Dir's metadata/ and targets/ that neither
// the new state nor the one before it serves: a box still reading the
// state before (it read its timestamp before the switch) finds all of it;
// roots are never removed (a box with an old root walks the chain). The
// new state's list is kept for the next sync.
func prune(o Options, files map[string]bool) (int, error) {
	keep := map[string]bool{}
	for f := range files {
		keep[f] = true
	}
	if data, err := os.ReadFile(filepath.Join(o.State, servedFile)); err == nil {
		var prev []string
		if json.Unmarshal(data, &prev) == nil {
			for _, f := range prev {
				keep[f] = true
			}
		}
	}
	removed := 0
	for _, sub := range []string{repo.MetadataDir, repo.TargetsDir} {
		err := filepath.WalkDir(filepath.Join(o.Dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(o.Dir, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			name := d.Name()
			if keep[rel] || name == "timestamp.json" || strings.HasSuffix(name, ".root.json") || strings.HasSuffix(name, ".part") {
				return nil
			}
			removed++
			return os.Remove(p)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
	}
	var list []string
	for f := range files {
		list = append(list, f)
	}
	sort.Strings(list)
	data, _ := json.Marshal(list)
	return removed, atomicfile.WriteFile(filepath.Join(o.State, servedFile), data, 0o644)
}

// Halt records in the mirror at dir that its fleet halted the rollout of
// account's default for product: boxes of the account on their default
// wait until the next sync brings another default. Nothing is written for
// another account or product.
func Halt(dir, account, product string) error {
	p := filepath.Join(dir, File)
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	r, err := ParseRecord(data)
	if err != nil {
		return err
	}
	if r.Account != account || r.Product != product || r.Halted {
		return nil
	}
	r.Halted = true
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, append(out, '\n'), 0o644)
}

// closure is the named versions and every version a route to one of them
// passes through from an older published version, oldest first.
func closure(cat *repo.Catalog, named []string) ([]string, error) {
	set := map[string]bool{}
	for _, v := range named {
		if !cat.Has(v) {
			return nil, fmt.Errorf("%s %s: %w", cat.Product, v, repo.ErrUnpublished)
		}
		set[v] = true
		target := version.MustParse(v)
		// Boxes may be on any version, published or not (the legacy ones
		// never were): route from each published one, and from below them
		// all.
		froms := append([]version.Version{version.MustParse("0")}, cat.Versions...)
		for _, from := range froms {
			if from.Compare(target) >= 0 {
				break
			}
			hops, err := cat.Route(from, v, false)
			if err != nil {
				continue // a box there cannot reach it: nothing to hold for it
			}
			for _, h := range hops {
				set[h.Version] = true
			}
		}
	}
	var out []version.Version
	for v := range set {
		out = append(out, version.MustParse(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	var s []string
	for _, v := range out {
		s = append(s, v.String())
	}
	return s, nil
}

// store downloads a target into the mirror under its hash-named path,
// unless it is there whole already.
func store(ctx context.Context, c *repoclient.Client, o Options, target string, res *Result, files map[string]bool) error {
	tf, err := c.Target(target)
	if err != nil {
		return err
	}
	dir, base := path.Split(target)
	rel := path.Join(repo.TargetsDir, dir, hex.EncodeToString(tf.Hashes["sha256"])+"."+base)
	files[rel] = true
	dst := filepath.Join(o.Dir, filepath.FromSlash(rel))
	if repoclient.Verify(tf, dst) == nil {
		res.Kept++
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	r, err := c.Download(ctx, target, dst, o.Fetch)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	res.Files++
	res.Bytes += r.Bytes
	return nil
}
