package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/obtain"
	"github.com/passeur/passeur/initramfs/roles"
	"golang.org/x/sys/unix"
)

const stageUsage = `usage: passeur stage -dir DIR -repo-root ROOT.json -trust KEY.pub[,KEY.pub] [-config FILE] [-repo URL] [-account NAME] [-release VERSION|TAG] [-system /]

Run on the box's own running system: reads the box's update configuration
(-config, the key's passeur/config.json format; flags win), decides what
the box should install exactly as the rescue would (the repository's TUF
metadata from ROOT.json, its tags, the account's default and rollout, the
barriers, the hops passed without a boot), checks DIR has room for the
release and the backup, and brings the release into DIR, verified. It
records what it staged in DIR/passeur/staged.json and changes nothing
else. DIR must be on storage the migration does not overwrite.`

// ErrNoRoom: the staging area cannot hold the release and the backup.
var ErrNoRoom = errors.New("the staging area has no room for the release and the backup")

// Staged is the record passeur stage leaves in the staging area: what is
// to be installed, tied to the signed manifest by its hash. The rescue
// that applies it verifies the release again and checks the hash.
type Staged struct {
	Format         int      `json:"format"` // 1
	Product        string   `json:"product"`
	Version        string   `json:"version"`
	Release        string   `json:"release"` // the release's folder in the staging area
	ManifestSHA256 string   `json:"manifest_sha256"`
	From           string   `json:"from,omitempty"`
	Want           string   `json:"want"`
	Why            string   `json:"why"`
	Through        []string `json:"through,omitempty"`
	Repo           string   `json:"repo"`
	At             string   `json:"at"`
}

// StagedFile is where the record lies in the staging area.
const StagedFile = "passeur/staged.json"

// stageOptions are what stage needs, the flags read.
type stageOptions struct {
	dir, system string
	root        []byte
	trusted     []minisign.PublicKey
	box         obtain.Box
	repo        string
	fetch       fetch.Options
	// free is the bytes the staging area can still take (statfs).
	free func(dir string) (int64, error)
	// identity is the box's identity for rollouts.
	identity func() string
	now      func() time.Time
}

func stageCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the staging area: a folder on storage the migration keeps")
	rootFile := fs.String("repo-root", "", "the repository's trusted root (given with the box's enrolment)")
	trust := fs.String("trust", "", "the public keys releases are signed with, comma-separated minisign .pub files")
	cfgFile := fs.String("config", "", "the box's update configuration (repo, account, release), the key's passeur/config.json format")
	repoURL := fs.String("repo", "", "the repository or mirror URL (wins over -config)")
	account := fs.String("account", "", "the box's account (wins over -config)")
	rel := fs.String("release", "", "a version or tag (wins over -config)")
	system := fs.String("system", "/", "the running system's root, where its version is read")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := stageOptions{dir: *dir, system: *system, now: time.Now, free: statfsFree,
		identity: func() string { return obtain.BoxIdentity(fixedDisks()) },
		fetch:    fetch.Options{Attempts: 6, Backoff: time.Second, Stall: 30 * time.Second, Log: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }}}
	if *cfgFile != "" {
		data, err := os.ReadFile(*cfgFile)
		if err != nil {
			return err
		}
		c, errs := config.Load("", data)
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("%s: %w", *cfgFile, err)
		}
		o.repo, o.box.Account, o.box.Release = c.Repo, c.Account, c.Release
	}
	for _, f := range []struct{ flag, to *string }{{repoURL, &o.repo}, {account, &o.box.Account}, {rel, &o.box.Release}} {
		if *f.flag != "" {
			*f.to = *f.flag
		}
	}
	if o.dir == "" || *rootFile == "" || *trust == "" || o.repo == "" {
		return errors.New(stageUsage)
	}
	var err error
	if o.root, err = os.ReadFile(*rootFile); err != nil {
		return err
	}
	for _, p := range strings.Split(*trust, ",") {
		k, err := sign.LoadPublicKey(p)
		if err != nil {
			return err
		}
		o.trusted = append(o.trusted, k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Hour)
	defer cancel()
	s, err := stage(ctx, o)
	if err != nil {
		return err
	}
	how := ""
	if len(s.Through) > 0 {
		how = " through " + strings.Join(s.Through, ", ")
	}
	if s.Version != s.Want {
		how += ", on the way to " + s.Want
	}
	fmt.Fprintf(stdout, "staged %s %s (%s) from %s%s in %s: %s, manifest SHA-256 %s\n", s.Product, s.Version, s.Why, cmp.Or(s.From, "nothing installed"), how,
		o.dir, s.Release, s.ManifestSHA256)
	return nil
}

// stage decides and brings the release; the record is written last.
func stage(ctx context.Context, o stageOptions) (*Staged, error) {
	state := filepath.Join(o.dir, medialayout.RepoStateDir)
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, err
	}
	c, err := repoclient.Open(ctx, repoclient.Options{URL: o.repo, Root: o.root, State: state, Fetch: o.fetch, Now: o.now})
	if err != nil {
		return nil, err
	}
	o.box.Identity = o.identity()
	work := filepath.Join(o.dir, "passeur", "work")
	defer os.RemoveAll(work)
	var installedErr error
	route, err := obtain.Resolve(ctx, c, o.box, obtain.Options{Repo: o.repo, State: work, Trusted: o.trusted, Fetch: o.fetch,
		Installed: func(m *release.Manifest) version.Version {
			v, err := roles.VersionOf(os.DirFS(o.system), m)
			if err != nil {
				installedErr = err
				return version.Version{}
			}
			parsed, _ := version.Parse(v)
			return parsed
		}})
	if installedErr != nil {
		return nil, fmt.Errorf("the running system's version: %w", installedErr)
	}
	if err != nil {
		return nil, err
	}
	// The release this session writes, and room for it and the backup.
	m, err := obtain.FetchManifest(ctx, c, route.Product, route.Next, filepath.Join(work, "next"), o.trusted, o.fetch)
	if err != nil {
		return nil, err
	}
	rel := path.Join(medialayout.ReleasesDir, route.Product+"-"+route.Next)
	need := m.MinMediaFree
	for _, a := range m.Artifacts {
		if a.VerifyStored(os.DirFS(o.dir), rel) != nil {
			need += a.StoredSize
		}
	}
	free, err := o.free(o.dir)
	if err != nil {
		return nil, err
	}
	if free < need {
		return nil, fmt.Errorf("%w: %s needs %s (the release's artifacts not yet there, and %s for the backup), %s free",
			ErrNoRoom, o.dir, inventory.HumanSize(need), inventory.HumanSize(m.MinMediaFree), inventory.HumanSize(free))
	}
	if _, err := obtain.Bring(ctx, c, route.Product, route.Next, o.dir, rel, o.trusted, o.fetch, nil); err != nil {
		return nil, err
	}
	staged, err := media.VerifyRelease(os.DirFS(o.dir), rel, o.trusted)
	if err != nil {
		return nil, err
	}
	s := &Staged{Format: 1, Product: route.Product, Version: route.Next, Release: rel, ManifestSHA256: staged.SHA256, From: route.From,
		Want: route.Want, Why: route.Why, Through: route.Through, Repo: o.repo, At: o.now().UTC().Format(time.RFC3339)}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return s, atomicfile.WriteFile(filepath.Join(o.dir, StagedFile), append(data, '\n'), 0o644)
}

// statfsFree is the bytes an unprivileged writer can still put in dir's
// filesystem.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// fixedDisks are the running box's disks, as the rescue's inventory sees
// them: what its identity falls back on when the firmware gives none.
func fixedDisks() []inventory.Disk {
	disks, _ := inventory.Scan(inventory.DirSys("/sys"), func(name string) (inventory.Device, error) { return os.Open("/dev/" + name) })
	return disks
}
