package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/progress"
	"github.com/passeur/passeur/initramfs/roles"
)

// downloadEvent is the payload of the "download" event.
type downloadEvent struct {
	Repo     string  `json:"repo"`
	Release  string  `json:"release"` // folder on the media
	Files    int     `json:"files"`
	Bytes    int64   `json:"bytes"`
	Attempts int     `json:"attempts"`
	Resumed  int     `json:"resumed"`
	Seconds  float64 `json:"seconds"`
}

// Errors of obtain a caller may branch on.
var (
	ErrNoRepoRoot = errors.New("this rescue image carries no repository root (passeur build -repo-root)")
	ErrUpToDate   = errors.New("the version the repository gives this box is the one installed: nothing to do")
)

// routeEvent is the payload of the "route" event: what the repository's
// policy gives this box, and the way there.
type routeEvent struct {
	Repo    string   `json:"repo"`
	Product string   `json:"product"`
	From    string   `json:"from,omitempty"` // the installed version, as the release recognizes it
	Want    string   `json:"want"`           // the version the policy gives
	Why     string   `json:"why"`
	Hops    []string `json:"hops"`
	Next    string   `json:"next"` // the hop this session takes
	// Through are the hops before Next, passed in this session without a
	// boot: planned and checked, never written.
	Through []string `json:"through,omitempty"`
}

// obtain brings, from the repository passeur.repo=, the release this box
// should go to onto the media, in releases/<product>-<version>/, unless
// the media holds it already. The repository's TUF metadata is verified
// from the root the rescue image carries, and remembered on the media, so
// that older metadata is refused by the next run; the version is the one
// passeur.release= names (a version or a tag), else the account's default
// as far as its rollout reached this box, else "stable"; the route there
// goes through every barrier, and this session takes its first hop. Each
// file is checked against its signed length and hash, then the manifest's
// minisign signature and the artifacts' hashes as any release on a key. A
// download cut off resumes where it stopped (HTTP Range), in this run or
// the next. obtain sets a.want to the version it brought.
func (a *Agent) obtain(disks []inventory.Disk) error {
	if a.Config.Repo == "" {
		return nil
	}
	reader := &roles.MountReader{Dir: "/run/passeur/obtain"}
	defer reader.Close()
	dev, files, err := media.Find(disks, reader)
	if err != nil {
		return err
	}
	trusted, err := media.LoadTrusted("/" + medialayout.TrustedDir)
	if err != nil {
		return err
	}
	// The release named is on the media already: nothing to ask the
	// repository, if it migrates the installed version itself (else the
	// route, through what it passes, is the repository's to say).
	if rel := mediaRelease(files, a.want, trusted); rel != nil {
		if from := a.installedVersion(disks, rel.Manifest, reader); from.String() == "" || rel.Manifest.MigrateFrom != nil && rel.Manifest.MigrateFrom.Contains(from) {
			a.Log.Printf("release %s is on the media: nothing to download", rel.Dir)
			return nil
		}
	}
	root, err := os.ReadFile("/" + medialayout.RepoRoot)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoRepoRoot, err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	o := a.fetchOptions()
	base := a.Config.Repo
	state := "/run/passeur/repository"
	os.RemoveAll(state)
	if err := loadRepoState(files, state, nil); err != nil {
		return err
	}
	a.rememberedOnDisks(disks, dev, reader, root, state)
	c, err := repoclient.Open(ctx, repoclient.Options{URL: base, Root: root, State: state, Fetch: o, Floor: builtTime()})
	if err != nil {
		return err
	}
	product, want, rerr := a.resolve(ctx, c, disks, reader, state, trusted, o)
	// What the box verified is remembered on the media whatever the policy
	// says: the next run refuses anything older.
	if err := reader.Release(dev); err != nil {
		return err
	}
	r := &run{mediaDev: dev}
	if err := a.mountMediaDev(r); err != nil {
		return err
	}
	defer a.closeRun(r)
	if _, err := saveRepoState(state, filepath.Join(r.media, medialayout.RepoStateDir)); err != nil {
		return a.mediaErr(r, err)
	}
	if rerr != nil {
		return rerr
	}
	a.want = want
	rel := path.Join(medialayout.ReleasesDir, product+"-"+a.want)
	if onMedia(os.DirFS(r.media), a.want, trusted) == rel {
		a.Log.Printf("%s %s is on the media: nothing to download", product, a.want)
		return a.closeRun(r)
	}
	a.Log.Printf("downloading %s %s from %s onto the media", product, a.want, base)
	dst := filepath.Join(r.media, rel)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return a.mediaErr(r, err)
	}
	ev2 := downloadEvent{Repo: base, Release: rel}
	get := func(name string, size int64) error {
		o := o
		if size > 0 {
			p := &progress.Progress{Label: "download " + name, Out: a.Console, Event: func(r progress.Report) { a.Events.Emit("progress", r) }}
			p.Start(size)
			var last int64
			o.Progress = func(done int64) { p.Add(done - last); last = done }
			defer p.Finish()
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, name)), 0o755); err != nil { // an artifact may sit in a folder
			return a.mediaErr(r, err)
		}
		res, err := c.Download(ctx, repo.ReleaseTarget(product, a.want, name), filepath.Join(dst, name), o)
		ev2.Files++
		ev2.Bytes += res.Bytes
		ev2.Attempts += res.Attempts
		ev2.Resumed += res.Resumed
		if err != nil {
			return a.mediaErr(r, fmt.Errorf("%s %s: %s: %w", product, a.want, name, err))
		}
		return nil
	}
	for _, name := range []string{release.ManifestFile, release.ManifestFile + sign.Ext} {
		os.Remove(filepath.Join(dst, name)) // small: always fetched anew
		if err := get(name, 0); err != nil {
			return err
		}
	}
	m, _, err := media.Verify(os.DirFS(r.media), rel, trusted)
	if err != nil {
		return fmt.Errorf("release %s %s from %s: %w", product, a.want, base, err)
	}
	if m.Product != product || m.Version.String() != a.want {
		return fmt.Errorf("release %s %s from %s: %w: its manifest is %s %s", product, a.want, base, repoclient.ErrHash, m.Product, m.Version)
	}
	for _, art := range m.Artifacts {
		if art.VerifyStored(os.DirFS(r.media), rel) == nil {
			continue // fetched by an earlier run
		}
		os.Remove(filepath.Join(dst, art.File)) // a whole file that does not verify is fetched anew
		if err := get(art.File, art.StoredSize); err != nil {
			return err
		}
	}
	ev2.Seconds = seconds(time.Since(start))
	a.Log.Printf("downloaded %s: %d files, %d bytes, %d requests (%d resumed) in %.1f s", rel, ev2.Files, ev2.Bytes, ev2.Attempts, ev2.Resumed, ev2.Seconds)
	a.Events.Emit("download", ev2)
	return a.closeRun(r)
}

// resolve reads the repository's policy for this box: the version it
// should run, the route there from the installed version (read with that
// release's recognition rules), and the hop this session takes, with the
// "route" event; or why there is none (ErrUpToDate, mirror.ErrBehind, a
// refusal).
func (a *Agent) resolve(ctx context.Context, c *repoclient.Client, disks []inventory.Disk, reader *roles.MountReader, state string, trusted []minisign.PublicKey, o fetch.Options) (product, next string, err error) {
	base := a.Config.Repo
	product, err = onlyProduct(c.Products())
	if err != nil {
		return "", "", fmt.Errorf("repository %s: %w", base, err)
	}
	cat, err := c.Catalog(product)
	if err != nil {
		return "", "", fmt.Errorf("repository %s: %w", base, err)
	}
	var acct *repo.Account
	if a.Config.Account != "" {
		if acct, err = c.Account(a.Config.Account, product); err != nil {
			return "", "", fmt.Errorf("repository %s: %w", base, err)
		}
	}
	box := repo.Box{Account: a.Config.Account, Identity: boxIdentity(disks)}
	var choice repo.Choice
	explicit := cat.Has(a.Config.Release)
	if explicit {
		choice = repo.Choice{Version: a.Config.Release, Why: "passeur.release=" + a.Config.Release}
	} else {
		box.Tag = a.Config.Release
		if choice, err = repo.Choose(cat, acct, box, c.Reference); err != nil {
			return "", "", fmt.Errorf("repository %s: %w", base, err)
		}
	}
	// The installed version, read as the plan reads it, with the
	// recognition rules of the release the policy gives.
	manifests := filepath.Join(state, "manifests", choice.Version)
	m, err := a.fetchManifest(ctx, c, product, choice.Version, manifests, trusted, o)
	if err != nil {
		return "", "", fmt.Errorf("repository %s: %w", base, err)
	}
	if m.Product != product || m.Version.String() != choice.Version {
		return "", "", fmt.Errorf("repository %s: %w: the manifest of %s/%s is %s %s", base, repoclient.ErrHash, product, choice.Version, m.Product, m.Version)
	}
	from := a.installedVersion(disks, m, reader)
	// An account's allow_downgrade holds for what its policy chose, never
	// for a version the media's configuration names.
	hops, err := cat.Route(from, choice.Version, choice.Account && acct != nil && acct.AllowDowngrade)
	ev := routeEvent{Repo: base, Product: product, From: from.String(), Want: choice.Version, Why: choice.Why}
	for _, h := range hops {
		ev.Hops = append(ev.Hops, h.Version)
	}
	if errors.Is(err, repo.ErrDowngrade) && !explicit {
		a.Events.Emit("route", ev)
		return "", "", fmt.Errorf("%w: %s %s is installed; %s gives %s, older: the box stays", ErrUpToDate, product, from, choice.Why, choice.Version)
	}
	if err != nil {
		a.Events.Emit("route", ev)
		return "", "", fmt.Errorf("repository %s: %w", base, err)
	}
	if len(hops) == 0 {
		a.Events.Emit("route", ev)
		return "", "", fmt.Errorf("%w: %s %s (%s)", ErrUpToDate, product, choice.Version, choice.Why)
	}
	// This session goes as far as the first hop the box must boot, and
	// writes only that one: those before it are passed through, their
	// manifests checked by preflight as if they were written.
	through, write := repo.Session(hops)
	ev.Next = write.Version
	for _, h := range through {
		ev.Through = append(ev.Through, h.Version)
	}
	if err := a.mirrorFirst(ctx, base, state, o, ev, box); err != nil {
		a.Events.Emit("route", ev)
		return "", "", err
	}
	a.through = nil
	for _, h := range through {
		dir := filepath.Join(state, "manifests", h.Version)
		t, err := a.fetchManifest(ctx, c, product, h.Version, dir, trusted, o)
		if err == nil && (t.Product != product || t.Version.String() != h.Version) {
			err = fmt.Errorf("%w: the manifest of %s/%s is %s %s", repoclient.ErrHash, product, h.Version, t.Product, t.Version)
		}
		if err != nil {
			a.Events.Emit("route", ev)
			return "", "", fmt.Errorf("repository %s: %w", base, err)
		}
		a.through = append(a.through, t)
	}
	a.Events.Emit("route", ev)
	how := ""
	if len(ev.Through) > 0 {
		how = ", through " + strings.Join(ev.Through, ", ") + " without a boot"
	}
	a.Log.Printf("repository %s: %s %s for this box (%s); route from %q: %s; this session goes to %s%s",
		base, product, choice.Version, choice.Why, from, strings.Join(ev.Hops, " → "), ev.Next, how)
	return product, ev.Next, nil
}

// builtTime is when the rescue image's sources were committed: no clock
// is believed below it (zero when the image does not say).
func builtTime() time.Time {
	data, err := os.ReadFile("/" + medialayout.Built)
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
	return t
}

// mirrorFirst holds a box back while its local repository server does not
// hold the hop it would take, or its fleet halted the rollout the box
// would join: the mirror goes first. A repository without mirror.json (the
// vendor's) holds every version it lists.
func (a *Agent) mirrorFirst(ctx context.Context, base, state string, o fetch.Options, ev routeEvent, box repo.Box) error {
	p := filepath.Join(state, mirror.File)
	os.Remove(p)
	o.Limit, o.Size, o.Progress = mirror.MaxFileBytes, 0, nil
	if _, err := fetch.File(ctx, base+"/"+mirror.File, p, o); err != nil {
		var se *fetch.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			return nil
		}
		return fmt.Errorf("repository %s: %w", base, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	rec, err := mirror.ParseRecord(data)
	if err != nil {
		return fmt.Errorf("repository %s: %w", base, err)
	}
	if !rec.Holds(ev.Next) {
		return fmt.Errorf("%w: %s %s (%s) is not on %s, which holds %s (synced %s)", mirror.ErrBehind, ev.Product, ev.Next, ev.Why,
			base, strings.Join(rec.Versions, ", "), rec.Synced.Format(time.RFC3339))
	}
	if rec.Halted && box.Tag == "" && box.Account == rec.Account && ev.Want == rec.Default {
		return fmt.Errorf("%w: the fleet of account %s halted the rollout of %s %s on %s", mirror.ErrBehind, rec.Account, ev.Product, ev.Want, base)
	}
	return nil
}

// onMedia is the folder of the media's release of version ver whose
// manifest verifies and whose artifacts are whole, or "".
func onMedia(files fs.FS, ver string, trusted []minisign.PublicKey) string {
	if r := mediaRelease(files, ver, trusted); r != nil {
		return r.Dir
	}
	return ""
}

// mediaRelease is the media's release of version ver whose manifest
// verifies and whose artifacts are whole, or nil.
func mediaRelease(files fs.FS, ver string, trusted []minisign.PublicKey) *media.Release {
	if ver == "" {
		return nil
	}
	rels, _ := media.Releases(files, trusted)
	for i, r := range rels {
		if r.Manifest.Version.String() == ver && r.Manifest.VerifyArtifactsStored(files, r.Dir) == nil {
			return &rels[i]
		}
	}
	return nil
}

// fetchManifest brings a version's manifest and its signature into dir
// and verifies them.
func (a *Agent) fetchManifest(ctx context.Context, c *repoclient.Client, product, ver, dir string, trusted []minisign.PublicKey, o fetch.Options) (*release.Manifest, error) {
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
	return m, err
}

// installedVersion is the version of the product installed on the
// machine, as the release's recognition rules read it; the zero Version
// when none is (an install) or it cannot be told without asking, in which
// case the plan asks or refuses, as without a repository.
func (a *Agent) installedVersion(disks []inventory.Disk, m *release.Manifest, reader roles.Reader) version.Version {
	res, err := roles.Assign(disks, m, reader, roles.Unattended{})
	if err != nil {
		a.Log.Printf("installed version: %v", err)
		return version.Version{}
	}
	sys := res.System()
	if sys == nil {
		return version.Version{}
	}
	v, err := version.Parse(sys.Version)
	if err != nil {
		a.Log.Printf("installed version %q: %v", sys.Version, err)
		return version.Version{}
	}
	return v
}

// boxIdentity is what tells this box from the others of its account, for
// its place in rollouts: the firmware's system UUID, else its serial,
// else the identities of its fixed disks.
func boxIdentity(disks []inventory.Disk) string {
	for _, f := range []string{"/sys/class/dmi/id/product_uuid", "/sys/class/dmi/id/product_serial", "/sys/class/dmi/id/board_serial"} {
		data, err := os.ReadFile(f)
		if id := strings.TrimSpace(string(data)); err == nil && !placeholder(id) {
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

// placeholder tells the firmware strings many boards share, which tell no
// box from another: empty, all zeros or all Fs, and what vendors leave in
// their templates.
func placeholder(id string) bool {
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

// The repository state a box remembers on the media: a few small JSON
// files, read back bounded (the media is not trusted: a forged file can
// only make the box refuse metadata, never accept it).
const (
	maxStateFiles = 32       // per folder
	maxStateTotal = 16 << 20 // in all: it is copied into RAM
)

// stateDirs are the folders of a repository's state, each with the bound
// of one of its files.
var stateDirs = []struct {
	name  string
	bound int64
}{{"", repo.MaxTimestampBytes}, {"metadata", repo.MaxTargetsBytes}, {"roots", repo.MaxRootBytes}}

// loadRepoState copies the media's remembered repository state into dir,
// at most *budget bytes in all (nil: maxStateTotal), which it lowers.
// Candidates for the time seen (seen-N.json) are not taken: only
// repoclient.Fold makes them, from the box's disks.
func loadRepoState(files fs.FS, dir string, budget *int64) error {
	if budget == nil {
		budget = new(int64)
		*budget = maxStateTotal
	}
	for _, sd := range stateDirs {
		sub := sd.name
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
		ents, err := fs.ReadDir(files, path.Join(medialayout.RepoStateDir, sub))
		if err != nil {
			continue // nothing remembered yet
		}
		for i, e := range ents {
			if i >= maxStateFiles || !e.Type().IsRegular() || !repoclient.StateName.MatchString(e.Name()) || isSeenCandidate(sub, e.Name()) {
				continue
			}
			f, err := files.Open(path.Join(medialayout.RepoStateDir, sub, e.Name()))
			if err != nil {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(f, sd.bound+1))
			f.Close()
			if err != nil || int64(len(data)) > sd.bound || int64(len(data)) > *budget {
				continue
			}
			*budget -= int64(len(data))
			if err := os.WriteFile(filepath.Join(dir, sub, e.Name()), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// isSeenCandidate tells a candidate for the time seen, in folder sub of a
// repository state.
func isSeenCandidate(sub, name string) bool {
	ok, _ := path.Match(repoclient.SeenCandidates, name)
	return sub == "" && ok
}

// rememberedOnDisks adds to the repository state in dir what the box's
// own disks remember newer: a system passeur installed keeps, on its state
// partition, what the box had verified when it was installed (see
// writeFstab). So a box booted from a new key, or netbooted with nothing
// on its media, still refuses metadata older than it saw. Every
// filesystem of the fixed disks that can hold it is read (read-only,
// bounded, like the media, at most 8); nothing read there is trusted:
// repoclient.Fold takes only what verifies from the baked root and is
// newer than what the media remembers.
func (a *Agent) rememberedOnDisks(disks []inventory.Disk, media string, reader volumeReader, root []byte, dir string) {
	elsewhere := filepath.Join(dir, repoclient.Elsewhere)
	os.RemoveAll(elsewhere)
	n := 0
	budget := int64(maxStateTotal) // for all the disks together
	for _, d := range disks {
		if d.Removable {
			continue
		}
		type volume struct {
			dev string
			fs  *fsprobe.FS
		}
		vols := []volume{{d.Path, d.FS}}
		for _, p := range d.Partitions {
			vols = append(vols, volume{p.Path, p.FS})
		}
		for _, v := range vols {
			if n >= 8 || v.fs == nil || v.dev == media || !roles.CanHoldState(v.fs.Type) {
				continue
			}
			files, err := reader.Files(v.dev, v.fs.Type)
			if err != nil {
				continue
			}
			if _, err := fs.Stat(files, medialayout.RepoStateDir); err != nil {
				continue
			}
			if err := loadRepoState(files, filepath.Join(elsewhere, path.Base(v.dev)), &budget); err != nil {
				a.Log.Printf("repository state remembered on %s: %v", v.dev, err)
				continue
			}
			n++
		}
	}
	took, err := repoclient.Fold(root, dir)
	if err != nil {
		a.Log.Printf("repository state remembered on the box's disks: %v", err)
	}
	if len(took) > 0 {
		a.Log.Printf("repository state: the box remembers newer than the media: %s", strings.Join(took, ", "))
	}
}

// saveRepoState writes the state repoclient left in dir onto the media
// (or a system's state partition); it returns how many files it wrote.
func saveRepoState(dir, dst string) (int, error) {
	n := 0
	for _, sd := range stateDirs {
		sub := sd.name
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		if err := os.MkdirAll(filepath.Join(dst, sub), 0o755); err != nil {
			return n, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !repoclient.StateName.MatchString(e.Name()) || isSeenCandidate(sub, e.Name()) {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				return n, err
			}
			if err := atomicfile.WriteFile(filepath.Join(dst, sub, e.Name()), data, 0o644); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// fetchOptions are the HTTP client and retry policy of the downloads.
func (a *Agent) fetchOptions() fetch.Options {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
	return fetch.Options{Client: &http.Client{Transport: tr}, Attempts: 6, Backoff: time.Second, Stall: 30 * time.Second,
		Log: func(format string, args ...any) { a.Log.Printf("download: "+format, args...) }}
}

// onlyProduct is the repository's product when it holds one.
func onlyProduct(names []string) (string, error) {
	sort.Strings(names)
	if len(names) != 1 {
		return "", fmt.Errorf("it holds %d products (%s): passeur serves repositories of one product", len(names), strings.Join(names, ", "))
	}
	return names[0], nil
}
