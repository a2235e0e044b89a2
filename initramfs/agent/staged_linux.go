package agent

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/staging"
)

// stagedDir is where the rescue mounts the data volume a staging area is on.
const stagedDir = "/run/passeur/staged"

// ErrStagedUndeclared refuses a staging area the staged release does not
// declare: the rescue writes on no data volume the release has not named.
var ErrStagedUndeclared = errors.New("the staged release does not declare this staging area (its manifest's staging labels and dir)")

// ErrStagedMode refuses passeur.staged= with a mode that does not check
// the staging area against the release it holds.
var ErrStagedMode = errors.New("a staging area is applied by passeur.mode=migrate (or looked at by plan) only")

// stagedMediaEvent is the payload of the "media" event of a staging area.
type stagedMediaEvent struct {
	Device string `json:"device"`
	Bytes  int64  `json:"bytes"`
	Staged string `json:"staged"` // passeur.staged=
	Volume string `json:"volume"` // the data volume's device
}

// stagedMedia attaches the staging area passeur.staged= names (a data
// volume's UUID and folder) as the run's install media, and returns disks
// with it: the staged run is a key's run from there on.
func (a *Agent) stagedMedia(disks []inventory.Disk) ([]inventory.Disk, error) {
	st, err := staging.Attach(disks, a.Config.Staged, stagedDir)
	if err != nil {
		return disks, err
	}
	a.staged = st
	d, err := inventory.Describe(inventory.DirSys("/sys"), openDevice, filepath.Base(st.Loop.Path))
	if err != nil {
		a.releaseStaged()
		return disks, fmt.Errorf("the staging area: %w", err)
	}
	a.Log.Printf("install media: the staging area %s on %s, %s on %s", a.Config.Staged, st.Volume, inventory.HumanSize(st.Size), st.Loop.Path)
	a.Events.Emit("media", stagedMediaEvent{Device: st.Loop.Path, Bytes: st.Size, Staged: a.Config.Staged.String(), Volume: st.Volume})
	return append(disks, d), nil
}

// checkStaged refuses, before anything is written, a staging area that m
// does not declare, or that is on the disk the migration writes.
func (a *Agent) checkStaged(m *release.Manifest, disks []inventory.Disk, system string) error {
	if a.staged == nil {
		return nil
	}
	fs := inventory.FSOf(disks, a.staged.Volume)
	switch {
	case m.Staging == nil:
		return fmt.Errorf("%w: %s %s declares none", ErrStagedUndeclared, m.Product, m.Version)
	case fs == nil || !m.StagingVolume(fs.Label) || m.Staging.Dir != a.Config.Staged.Dir:
		return fmt.Errorf("%w: %s is not on a volume labelled %q in a folder %q", ErrStagedUndeclared, a.Config.Staged, m.Staging.Labels, m.Staging.Dir)
	case inventory.DiskOf(disks, a.staged.Volume) == system:
		return fmt.Errorf("%w: %s is on %s, the disk the migration writes", ErrStagedUndeclared, a.staged.Volume, system)
	}
	return nil
}

// cleanStaged removes the staged release from the staging area, whose
// image is mounted on media, once the new system reported healthy.
func (a *Agent) cleanStaged(media string) {
	if a.staged == nil {
		return
	}
	if err := staging.Clean(media); err != nil {
		a.Log.Printf("the staging area keeps its release: %v", err)
		return
	}
	a.Log.Printf("the staging area %s: release removed; the backup and the journal stay", a.Config.Staged)
	a.Events.Emit("staged_cleaned", map[string]string{"staged": a.Config.Staged.String()})
}

// releaseStaged detaches the staging area's image and unmounts its
// volume, before the machine boots another system or powers off.
func (a *Agent) releaseStaged() {
	if a.staged == nil {
		return
	}
	if err := a.staged.Close(); err != nil {
		a.Log.Printf("the staging area: %v", err)
	}
	a.staged = nil
}
