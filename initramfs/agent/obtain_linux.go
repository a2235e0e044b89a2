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
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/obtain"
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
	ErrUpToDate   = obtain.ErrUpToDate
)

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
	progressOf := func(name string, size int64) (func(int64), func()) {
		p := &progress.Progress{Label: "download " + name, Out: a.Console, Event: func(r progress.Report) { a.Events.Emit("progress", r) }}
		p.Start(size)
		var last int64
		return func(done int64) { p.Add(done - last); last = done }, p.Finish
	}
	b, err := obtain.Bring(ctx, c, product, a.want, r.media, rel, trusted, o, progressOf)
	if err != nil {
		return a.mediaErr(r, fmt.Errorf("from %s: %w", base, err))
	}
	ev2 := downloadEvent{Repo: base, Release: rel, Files: b.Files, Bytes: b.Bytes, Attempts: b.Attempts, Resumed: b.Resumed}
	ev2.Seconds = seconds(time.Since(start))
	a.Log.Printf("downloaded %s: %d files, %d bytes, %d requests (%d resumed) in %.1f s", rel, ev2.Files, ev2.Bytes, ev2.Attempts, ev2.Resumed, ev2.Seconds)
	a.Events.Emit("download", ev2)
	return a.closeRun(r)
}

// resolve reads the repository's policy for this box (obtain.Resolve),
// emits the "route" event, keeps the releases passed through for the plan,
// and returns the product and the hop this session writes.
func (a *Agent) resolve(ctx context.Context, c *repoclient.Client, disks []inventory.Disk, reader *roles.MountReader, state string, trusted []minisign.PublicKey, o fetch.Options) (product, next string, err error) {
	a.through = nil
	box := obtain.Box{Account: a.Config.Account, Release: a.Config.Release, Identity: obtain.BoxIdentity(disks)}
	route, err := obtain.Resolve(ctx, c, box, obtain.Options{Repo: a.Config.Repo, State: state, Trusted: trusted, Fetch: o,
		Installed: func(m *release.Manifest) version.Version { return a.installedVersion(disks, m, reader) }})
	if route.Known {
		a.Events.Emit("route", route)
	}
	if err != nil {
		return "", "", err
	}
	a.through = route.Passed
	how := ""
	if len(route.Through) > 0 {
		how = ", through " + strings.Join(route.Through, ", ") + " without a boot"
	}
	a.Log.Printf("repository %s: %s %s for this box (%s); route from %q: %s; this session goes to %s%s",
		route.Repo, route.Product, route.Want, route.Why, route.From, strings.Join(route.Hops, " → "), route.Next, how)
	return route.Product, route.Next, nil
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
			if i >= maxStateFiles || !e.Type().IsRegular() || !repoclient.StateName.MatchString(e.Name()) {
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
			if !e.Type().IsRegular() || !repoclient.StateName.MatchString(e.Name()) {
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
