package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/plan"
	"github.com/passeur/passeur/initramfs/preflight"
	"github.com/passeur/passeur/initramfs/roles"
)

type releaseEvent struct {
	Dir     string `json:"dir"`
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

type rolesEvent struct {
	Release string             `json:"release"`
	Disks   []roles.Assignment `json:"disks"`
}

// session is what every mode that acts on an installed system first
// establishes, reading only: the media and its release, every disk's role,
// the preflight checks and the plan.
type session struct {
	reader *roles.MountReader
	// files, when set, reads the data volumes instead of reader (a host
	// running the steps).
	files volumeReader
	disks []inventory.Disk
	m     *release.Manifest
	roles *roles.Result
	sys   *roles.Assignment // nil when no installed product was found
	plan  *plan.Plan
	rel   *media.Release // the release chosen on the media
	pl    release.Placement
	// rollback tells whether preflight found room on the media to save
	// what the migration overwrites.
	rollback bool
	// profile is set when no release is on the media and the product is
	// known from the rescue image's profile: backing up only.
	profile bool
}

// ErrNoSystem is returned by the modes that need an installed system when
// there is none.
var ErrNoSystem = errors.New("no installed system of the release's product")

// plan finds the install media and its releases, gives every disk its
// role, checks and prints the plan, reading everything read-only.
func (a *Agent) plan(disks []inventory.Disk) error {
	s, err := a.prepare(disks)
	defer s.close(a)
	if errors.Is(err, ErrNoSystem) {
		a.Log.Printf("%v: nothing to migrate (a fresh install is passeur.mode=install)", err)
		return nil
	}
	if err != nil {
		return err
	}
	s.plan.Write(a.Console)
	return a.Events.Emit("plan", s.plan)
}

// release names the session's release, or the profile standing for it.
func (s *session) release() string {
	if s.profile {
		return s.m.Product + " (no release: the rescue image's profile)"
	}
	return s.m.Product + " " + s.m.Version.String()
}

func (s *session) close(a *Agent) {
	if err := s.reader.Close(); err != nil {
		a.Fail("plan", err)
	}
}

// fsType is the filesystem type of a device, for mounting it.
func (s *session) fsType(dev string) string {
	return inventory.TypeOf(s.disks, dev)
}

// prepare establishes the session of a run on an installed system:
// release, roles, preflight and plan. The session is always returned, to
// be closed (its reader may have mounted something), even with an error.
func (a *Agent) prepare(disks []inventory.Disk) (*session, error) {
	s, err := a.assign(disks)
	if err != nil {
		return s, err
	}
	if s.sys = s.roles.System(); s.sys == nil {
		return s, fmt.Errorf("%w: no disk holds an install of %s", ErrNoSystem, s.m.Product)
	}
	if err := a.checkStaged(s.m, disks, s.sys.Disk.Path); err != nil {
		return s, err
	}

	backupOnly := s.profile || a.Config.Mode == config.ModeBackup || a.Config.Mode == config.ModeRecover
	env := preflight.MountEnv{Reader: s.reader, FSType: s.fsType}
	rep := preflight.Run(preflight.Input{Release: s.m, SignedBy: "key " + s.rel.KeyID, Roles: s.roles, BackupOnly: backupOnly, Through: a.through}, env)
	var failed []string
	for _, c := range rep.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
			failed = append(failed, c.Name)
		}
		fmt.Fprintf(a.Console, "  [%s] %-32s %s\n", mark, c.Name, c.Detail)
	}
	a.Events.Emit("preflight", rep)
	s.rollback = rep.Rollback
	if err := rep.Err(); err != nil {
		if !slices.Equal(failed, []string{"media free space"}) || !a.Config.HasDebug("no-space-check") || a.Config.Mode == config.ModePlan {
			return s, err
		}
		a.Log.Printf("passeur.debug=no-space-check: going on although %v", err)
	}
	if backupOnly {
		// A backup never depends on the release; it keeps the plan a
		// migration to it would follow, when the release can migrate this
		// system.
		if s.profile {
			return s, nil
		}
		if s.pl, err = preflight.Migratable(s.m, s.sys); err != nil {
			a.Log.Printf("the backup keeps no migration plan: %v", err)
			return s, nil
		}
		s.plan = plan.Make(s.m, s.roles, s.pl)
		return s, nil
	}
	if s.pl, err = preflight.Layout(s.m, s.sys); err != nil {
		return s, err
	}
	s.plan = plan.Make(s.m, s.roles, s.pl)
	return s, nil
}

// assign finds the install media and the release to use, and gives every
// disk its role, reading only: what every mode that acts on disks does
// first. The session is always returned, to be closed, even with an error.
func (a *Agent) assign(disks []inventory.Disk) (*session, error) {
	s := &session{reader: &roles.MountReader{Dir: "/run/passeur/mnt"}, disks: disks}
	trusted, err := media.LoadTrusted("/" + medialayout.TrustedDir)
	if err != nil {
		return s, err
	}
	_, files, err := media.Find(disks, s.reader)
	if err != nil {
		return s, err
	}
	rels, refused := media.Releases(files, trusted)
	for _, r := range refused {
		a.Log.Printf("release %s refused: %v", r.Dir, r.Err)
		a.Events.Emit("release", releaseEvent{Dir: r.Dir, Error: r.Err.Error()})
	}
	for _, r := range rels {
		a.Events.Emit("release", releaseEvent{Dir: r.Dir, Product: r.Manifest.Product, Version: r.Manifest.Version.String()})
	}
	var rel *media.Release
	switch {
	case len(rels) > 0 || len(refused) > 0:
		if rel, err = a.choose(files, rels); err != nil {
			return s, err
		}
		a.Log.Printf("release %s %s from %s", rel.Manifest.Product, rel.Manifest.Version, rel.Dir)
	case a.Config.Mode == config.ModeBackup || a.Config.Mode == config.ModeRecover:
		if rel, err = a.profileRelease(); err != nil {
			return s, fmt.Errorf("%w, and %w", media.ErrNoRelease, err)
		}
		s.profile = true
	case a.Config.Repo == "":
		return s, ErrNothingToInstall
	default:
		return s, fmt.Errorf("%w: none came from the repository %s", media.ErrNoRelease, a.Config.Repo)
	}
	s.rel, s.m = rel, rel.Manifest
	var ask roles.Asker = roles.Unattended{}
	if !a.Config.Unattended {
		ask = roles.NewConsole(os.Stdin, a.Console)
	}
	if s.roles, err = roles.Assign(disks, s.m, s.reader, ask); err != nil {
		return s, err
	}
	roles.WriteTable(a.Console, s.roles)
	a.Events.Emit("roles", rolesEvent{Release: s.release(), Disks: s.roles.Disks})
	return s, nil
}

// choose picks the release passeur.release= names, else the newest, among
// those whose artifacts verify as stored on the media: a release damaged
// on the key is refused by name, and the next good one is used.
func (a *Agent) choose(files fs.FS, rels []media.Release) (*media.Release, error) {
	if _, err := media.Newest(rels, ""); err != nil {
		return nil, err // none, or several products
	}
	order := slices.Clone(rels)
	slices.SortStableFunc(order, func(x, y media.Release) int { return y.Manifest.Version.Compare(x.Manifest.Version) })
	var refused []string
	for i := range order {
		r := &order[i]
		if a.want != "" && r.Manifest.Version.String() != a.want {
			continue
		}
		if err := a.checkArtifacts(files, r.Dir, r.Manifest); err != nil {
			a.Log.Printf("release %s refused: %v", r.Dir, err)
			a.Events.Emit("release", releaseEvent{Dir: r.Dir, Error: err.Error()})
			refused = append(refused, err.Error())
			continue
		}
		return r, nil
	}
	if a.want != "" && refused == nil {
		return nil, fmt.Errorf("%w: none is version %s (passeur.release=)", media.ErrNoRelease, a.want)
	}
	return nil, fmt.Errorf("%w: %s", media.ErrNoRelease, strings.Join(refused, "; "))
}

// mediaFiles reads the media's files, read-only (preflight may have
// unmounted what the session read before).
func (s *session) mediaFiles() (fs.FS, error) {
	dev, err := s.mediaDevice()
	if err != nil {
		return nil, err
	}
	return s.reader.Files(dev, "vfat")
}

// mediaDevice is the device of the install media's FAT filesystem.
func (s *session) mediaDevice() (string, error) {
	a := s.roles.Media()
	if a == nil {
		return "", media.ErrNoMedia
	}
	dev, fs := a.MediaFS()
	if fs == nil || fs.Type != "vfat" {
		return "", fmt.Errorf("%w: %s has no FAT filesystem", media.ErrNoMedia, a.Disk.Path)
	}
	return dev, nil
}

// volumes reads the installed system's data volumes.
func (s *session) volumes() volumeReader {
	if s.files != nil {
		return s.files
	}
	return s.reader
}
