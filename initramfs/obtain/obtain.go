// Package obtain decides, from a repository's signed policy, what a box
// should install and the way there, and brings that release into a
// folder, verified. The rescue does it before a migration from a
// repository (initramfs/agent's obtain), and passeur stage on a running
// box, alike: the same choice, the same route, the same checks.
package obtain

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
)

// ErrUpToDate: the policy gives the box the version it runs.
var ErrUpToDate = errors.New("the version the repository gives this box is the one installed: nothing to do")

// Box is who asks: its account, the version or tag it names (none: its
// account's default, else stable), and its identity, for rollouts.
type Box struct {
	Account  string
	Release  string
	Identity string
}

// Route is what the repository's policy gives a box and the way there:
// the payload of the rescue's "route" event.
type Route struct {
	Repo    string   `json:"repo"`
	Product string   `json:"product"`
	From    string   `json:"from,omitempty"` // the installed version, as the release recognizes it
	Want    string   `json:"want"`           // the version the policy gives
	Why     string   `json:"why"`
	Hops    []string `json:"hops"`
	Next    string   `json:"next"` // the hop this session writes
	// Through are the hops before Next, passed in this session without a
	// boot: planned and checked, never written.
	Through []string `json:"through,omitempty"`
	// Passed are Through's manifests, verified.
	Passed []*release.Manifest `json:"-"`
	// Known: the route from the installed version was computed (with or
	// without an error after it).
	Known bool `json:"-"`
}

// Options say where the repository is and how the box reads itself.
type Options struct {
	Repo string // the repository's URL
	// State is the box's repository state (repoclient.Options.State);
	// the manifests Resolve reads are kept under it.
	State   string
	Trusted []minisign.PublicKey // the keys releases are signed with
	Fetch   fetch.Options
	// Installed is the installed version as release m's recognition rules
	// read it; the zero Version when there is none (an install) or it
	// cannot be told.
	Installed func(m *release.Manifest) version.Version
}

// Resolve reads the repository's policy for box: the version it should
// run (the version or tag it names, else its account's default as far as
// the rollout reached it, else stable), the route there from the installed
// version through every barrier, and how far this session goes (to the
// first hop that must boot once, or the end; repo.Session). It fails with
// ErrUpToDate when there is nothing to do, mirror.ErrBehind when the
// repository (a mirror) does not hold the hop yet or halted the rollout.
// The route is returned as far as it is known, with the error too.
func Resolve(ctx context.Context, c *repoclient.Client, box Box, o Options) (Route, error) {
	r := Route{Repo: o.Repo}
	product, err := onlyProduct(c.Products())
	if err != nil {
		return r, fmt.Errorf("repository %s: %w", o.Repo, err)
	}
	r.Product = product
	cat, err := c.Catalog(product)
	if err != nil {
		return r, fmt.Errorf("repository %s: %w", o.Repo, err)
	}
	var acct *repo.Account
	if box.Account != "" {
		if acct, err = c.Account(box.Account, product); err != nil {
			return r, fmt.Errorf("repository %s: %w", o.Repo, err)
		}
	}
	who := repo.Box{Account: box.Account, Identity: box.Identity}
	var choice repo.Choice
	explicit := cat.Has(box.Release)
	if explicit {
		choice = repo.Choice{Version: box.Release, Why: "passeur.release=" + box.Release}
	} else {
		who.Tag = box.Release
		if choice, err = repo.Choose(cat, acct, who, c.Reference); err != nil {
			return r, fmt.Errorf("repository %s: %w", o.Repo, err)
		}
	}
	r.Want, r.Why = choice.Version, choice.Why
	// The installed version, read with the recognition rules of the
	// release the policy gives.
	m, err := FetchManifest(ctx, c, product, choice.Version, filepath.Join(o.State, "manifests", choice.Version), o.Trusted, o.Fetch)
	if err != nil {
		return r, fmt.Errorf("repository %s: %w", o.Repo, err)
	}
	from := o.Installed(m)
	r.From = from.String()
	// An account's allow_downgrade holds for what its policy chose, never
	// for a version the box names.
	hops, err := cat.Route(from, choice.Version, choice.Account && acct != nil && acct.AllowDowngrade)
	r.Known = true
	for _, h := range hops {
		r.Hops = append(r.Hops, h.Version)
	}
	if errors.Is(err, repo.ErrDowngrade) && !explicit {
		return r, fmt.Errorf("%w: %s %s is installed; %s gives %s, older: the box stays", ErrUpToDate, product, from, choice.Why, choice.Version)
	}
	if err != nil {
		return r, fmt.Errorf("repository %s: %w", o.Repo, err)
	}
	if len(hops) == 0 {
		return r, fmt.Errorf("%w: %s %s (%s)", ErrUpToDate, product, choice.Version, choice.Why)
	}
	// This session goes as far as the first hop the box must boot, and
	// writes only that one: those before it are passed through, their
	// manifests checked by the plan as if they were written.
	through, write := repo.Session(hops)
	r.Next = write.Version
	for _, h := range through {
		r.Through = append(r.Through, h.Version)
	}
	if err := mirrorFirst(ctx, o, r, who); err != nil {
		return r, err
	}
	for _, h := range through {
		t, err := FetchManifest(ctx, c, product, h.Version, filepath.Join(o.State, "manifests", h.Version), o.Trusted, o.Fetch)
		if err != nil {
			return r, fmt.Errorf("repository %s: %w", o.Repo, err)
		}
		r.Passed = append(r.Passed, t)
	}
	return r, nil
}

// FetchManifest brings a version's manifest and its signature into
// dir/release and verifies them: signed by a trusted key, of that product
// and version.
func FetchManifest(ctx context.Context, c *repoclient.Client, product, ver, dir string, trusted []minisign.PublicKey, o fetch.Options) (*release.Manifest, error) {
	rel := filepath.Join(dir, "release")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{release.ManifestFile, release.ManifestFile + sign.Ext} {
		if _, err := c.Download(ctx, repo.ReleaseTarget(product, ver, name), filepath.Join(rel, name), o); err != nil {
			return nil, fmt.Errorf("%s %s: %s: %w", product, ver, name, err)
		}
	}
	m, _, err := media.Verify(os.DirFS(dir), "release", trusted)
	if err != nil {
		return nil, err
	}
	if m.Product != product || m.Version.String() != ver {
		return nil, fmt.Errorf("%w: the manifest of %s/%s is %s %s", repoclient.ErrHash, product, ver, m.Product, m.Version)
	}
	return m, nil
}

// mirrorFirst holds a box back while its local repository server does not
// hold the hop it would take, or its fleet halted the rollout the box
// would join: the mirror goes first. A repository without mirror.json (the
// vendor's) holds every version it lists.
func mirrorFirst(ctx context.Context, o Options, r Route, box repo.Box) error {
	p := filepath.Join(o.State, mirror.File)
	os.Remove(p)
	fo := o.Fetch
	fo.Limit, fo.Size, fo.Progress = mirror.MaxFileBytes, 0, nil
	if _, err := fetch.File(ctx, o.Repo+"/"+mirror.File, p, fo); err != nil {
		var se *fetch.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			return nil
		}
		return fmt.Errorf("repository %s: %w", o.Repo, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	rec, err := mirror.ParseRecord(data)
	if err != nil {
		return fmt.Errorf("repository %s: %w", o.Repo, err)
	}
	if !rec.Holds(r.Next) {
		return fmt.Errorf("%w: %s %s (%s) is not on %s, which holds %s (synced %s)", mirror.ErrBehind, r.Product, r.Next, r.Why,
			o.Repo, strings.Join(rec.Versions, ", "), rec.Synced.Format(time.RFC3339))
	}
	if rec.Halted && box.Tag == "" && box.Account == rec.Account && r.Want == rec.Default {
		return fmt.Errorf("%w: the fleet of account %s halted the rollout of %s %s on %s", mirror.ErrBehind, rec.Account, r.Product, r.Want, o.Repo)
	}
	return nil
}

// onlyProduct is the repository's product when it holds one.
func onlyProduct(names []string) (string, error) {
	sort.Strings(names)
	if len(names) != 1 {
		return "", fmt.Errorf("it holds %d products (%s): passeur serves repositories of one product", len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}

// Brought says what Bring fetched.
type Brought struct {
	Files    int   `json:"files"`
	Bytes    int64 `json:"bytes"`
	Attempts int   `json:"attempts"`
	Resumed  int   `json:"resumed"`
}

// Bring fetches release product ver from the repository into root/rel:
// the manifest and its signature always anew, verified (a trusted key, that
// product and version), then each artifact that is not already there
// whole, checked against its signed length and hash as it is stored
// (repoclient) and against the manifest. A download cut off resumes where
// it stopped (HTTP Range), in this call or the next. progress, when set,
// is told of each artifact before it is fetched and returns what follows
// its bytes.
func Bring(ctx context.Context, c *repoclient.Client, product, ver, root, rel string, trusted []minisign.PublicKey, o fetch.Options,
	progress func(name string, size int64) (func(done int64), func())) (Brought, error) {
	var b Brought
	dst := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return b, err
	}
	get := func(name string, size int64) error {
		o := o
		if size > 0 && progress != nil {
			add, finish := progress(name, size)
			o.Progress = add
			defer finish()
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755); err != nil { // an artifact may sit in a folder
			return err
		}
		res, err := c.Download(ctx, repo.ReleaseTarget(product, ver, name), filepath.Join(dst, name), o)
		b.Files++
		b.Bytes += res.Bytes
		b.Attempts += res.Attempts
		b.Resumed += res.Resumed
		if err != nil {
			return fmt.Errorf("%s %s: %s: %w", product, ver, name, err)
		}
		return nil
	}
	for _, name := range []string{release.ManifestFile, release.ManifestFile + sign.Ext} {
		os.Remove(filepath.Join(dst, name)) // small: always fetched anew
		if err := get(name, 0); err != nil {
			return b, err
		}
	}
	files := os.DirFS(root)
	m, _, err := media.Verify(files, path.Clean(rel), trusted)
	if err != nil {
		return b, fmt.Errorf("release %s %s: %w", product, ver, err)
	}
	if m.Product != product || m.Version.String() != ver {
		return b, fmt.Errorf("release %s %s: %w: its manifest is %s %s", product, ver, repoclient.ErrHash, m.Product, m.Version)
	}
	for _, art := range m.Artifacts {
		if art.VerifyStored(files, rel) == nil {
			continue // fetched before
		}
		os.Remove(filepath.Join(dst, art.File)) // a whole file that does not verify is fetched anew
		if err := get(art.File, art.StoredSize); err != nil {
			return b, err
		}
	}
	return b, nil
}

// BoxIdentity is what tells this box from the others of its account, for
// its place in rollouts: the firmware's system UUID, else its serial,
// else the identities of its fixed disks.
func BoxIdentity(disks []inventory.Disk) string {
	for _, f := range []string{"/sys/class/dmi/id/product_uuid", "/sys/class/dmi/id/product_serial", "/sys/class/dmi/id/board_serial"} {
		data, err := os.ReadFile(f)
		if id := strings.TrimSpace(string(data)); err == nil && !Placeholder(id) {
			return id
		}
	}
	var names []string
	for _, d := range disks {
		if !d.Removable {
			names = append(names, identity.Name(d))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// Placeholder tells the firmware strings many boards share, which tell no
// box from another: empty, all zeros or all Fs, and what vendors leave in
// their templates.
func Placeholder(id string) bool {
	if strings.Trim(id, "0-") == "" || strings.Trim(strings.ToLower(id), "f-") == "" {
		return true
	}
	switch strings.ToLower(id) {
	case "03000200-0400-0500-0006-000700080009", "not specified", "not applicable", "to be filled by o.e.m.",
		"default string", "system serial number", "none", "0123456789", "123456789", "n/a":
		return true
	}
	return false
}
