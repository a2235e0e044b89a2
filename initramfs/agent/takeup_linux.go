package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/steps"
)

// Refusals of taking up an unfinished run.
var (
	// ErrReleaseChanged refuses to take up a migration whose release is no
	// longer on the media as it was.
	ErrReleaseChanged = errors.New("the release of the unfinished migration is no longer on the media as it was")
	// ErrTakeUpUnconfirmed refuses, unattended, to take up a run on a
	// disk with no serial or WWID: only its table tells it from a
	// look-alike, and only the operator can say it is this machine's.
	ErrTakeUpUnconfirmed = errors.New("taking up the unfinished run needs the operator's word")
)

// takeUp finds on the media a run that began writing a disk of this
// machine and finishes it from its journal, once its job proves to be the
// one passeur computes now from the verified release and the disk as it
// is. A run of another machine is left for it. It reports whether it took
// one up (or refused to).
func (a *Agent) takeUp(disks []inventory.Disk) (bool, error) {
	reader := &roles.MountReader{Dir: "/run/passeur/resume"}
	defer reader.Close()
	dev, _, err := media.Find(disks, reader)
	if err != nil {
		return false, nil // no media: the normal path says so
	}
	if err := reader.Release(dev); err != nil {
		return false, err
	}
	r := &run{mediaDev: dev}
	if err := a.mountMediaDev(r); err != nil {
		return false, err
	}
	return a.takeUpOn(r, disks, reader)
}

// takeUpOn is takeUp on the media mounted (or the folder) at r.media.
func (a *Agent) takeUpOn(r *run, disks []inventory.Disk, reader volumeReader) (bool, error) {
	runs, err := journal.Unfinished(filepath.Join(r.media, medialayout.BackupDir, "*", "*"))
	if err != nil {
		a.closeRun(r)
		return false, a.mediaErr(r, err)
	}
	// A rollback cut by a power loss is finished first, whatever the
	// order of the folders' stamps (a box without a battery clock): the
	// disk is neither system until it is.
	for _, u := range runs {
		if u.Header.Mode != string(config.ModeRollback) {
			continue
		}
		if took, err := a.resumeRollback(r, u, disks); took || err != nil {
			a.wroteSystem = true // the disk is being put back: neither system yet
			defer a.closeRun(r)
			return true, err
		}
	}
	for _, u := range runs {
		if journal.Began(u.Records, steps.RolledIn) { // its disk is being, or was, put back
			continue
		}
		if u.Header.Mode != string(config.ModeMigrate) && u.Header.Mode != string(config.ModeInstall) || !writing(u.Records) {
			continue
		}
		name, _ := filepath.Rel(r.media, u.Dir)
		job, target, state, err := ownRun(u, disks)
		if errors.Is(err, errNotOurs) {
			a.Log.Printf("unfinished %s %s left alone: %v", u.Header.Mode, name, err)
			continue
		}
		// This machine's disk was being written (or cannot be told): its
		// old system may be gone, whatever this boot does now.
		a.wroteSystem = true
		if err != nil {
			a.closeRun(r)
			return true, fmt.Errorf("%s: %w", name, err)
		}
		defer a.closeRun(r)
		// The way back (systemd-boot's default entry, the rescue on the
		// new ESP) checked, and set again if it went, before anything
		// else: a cut while the run is checked again comes back here too.
		a.rearmWayBack(u.Records)
		return true, a.resume(r, u, job, target, state, disks, reader)
	}
	return false, a.closeRun(r)
}

// ownRun reads the job of an unfinished run and finds its target among
// disks, if the run is this machine's: its header names the identity of
// the disk the job targets as it is now (the table the run was planned
// on), or the job's own table is already on that disk. A run of another
// machine is errNotOurs, left for it; a run of this machine whose job
// cannot be what passeur planned is ErrRunMismatch.
func ownRun(u journal.Run, disks []inventory.Disk) (*migrate.Job, *inventory.Disk, migrate.TableState, error) {
	detail, ok := journal.DoneIn(u.Records, steps.Plan)
	var job *migrate.Job
	if !ok {
		return nil, nil, 0, fmt.Errorf("%w: no plan in its journal", errNotOurs)
	}
	if err := json.Unmarshal(detail, &job); err != nil || job == nil {
		return nil, nil, 0, fmt.Errorf("%w: unreadable plan record: %v", errNotOurs, err)
	}
	target, err := job.Target.Find(disks)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: %w", errNotOurs, err)
	}
	ours := identity.Names(u.Header.Machine, *target, false)
	f, err := os.Open(target.Path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	state, err := job.OnDisk(f)
	switch {
	case err != nil && ours:
		return nil, nil, 0, err
	case err != nil:
		return nil, nil, 0, fmt.Errorf("%w: %w", errNotOurs, err)
	case state == migrate.OldTable && !ours, state == migrate.NewTable && !identity.Names(u.Header.Machine, *target, true):
		return nil, nil, 0, fmt.Errorf("%w (%s); this one's disk %s is %s", errNotOurs, u.Header.Machine, target.Path, identity.Name(*target))
	}
	return job, target, state, nil
}

// errNotOurs is a run on the media that is not this machine's.
var errNotOurs = errors.New("another machine's run")

// resume takes up the run u on target: the release verified again, the
// job checked against the one computed now, announced, confirmed when
// attended, and only then written.
func (a *Agent) resume(r *run, u journal.Run, job *migrate.Job, target *inventory.Disk, state migrate.TableState, disks []inventory.Disk, reader volumeReader) error {
	rel, err := a.sameRelease(r, job)
	if err != nil {
		return err
	}
	seed := filepath.Base(u.Dir) + "\x00" + u.Header.Machine
	if err := job.Check(rel.Manifest, rel.SHA256, seed, *target, state); err != nil {
		return err
	}
	name, _ := filepath.Rel(r.media, u.Dir)
	var done []string
	for _, rec := range u.Records {
		if rec.State == journal.StateDone {
			done = append(done, rec.Step)
		}
	}
	fmt.Fprintf(a.Console, "TAKE UP: the unfinished %s %s of %s to %s %s\n  done: %s\n", u.Header.Mode, name, target.Path,
		rel.Manifest.Product, rel.Manifest.Version, strings.Join(done, ", "))
	a.Events.Emit("take_up", map[string]any{"run": name, "mode": u.Header.Mode, "disk": target.Path, "identity": identity.Name(*target),
		"release": rel.Dir, "done": done, "table_written": state == migrate.NewTable})
	if err := a.confirmTakeUp(job, target, name); err != nil {
		return err
	}
	a.Log.Printf("taking up the unfinished %s %s of %s", u.Header.Mode, name, job.Target)
	r.dir, r.host, r.machine = u.Dir, u.Header.Host, u.Header.Machine
	if r.j, err = journal.Open(filepath.Join(u.Dir, journal.File)); err != nil {
		return a.mediaErr(r, err)
	}
	if err := a.attach(r, "console.log"); err != nil {
		return err
	}
	if err := a.checkArtifacts(os.DirFS(r.media), rel.Dir, rel.Manifest); err != nil {
		return err
	}
	if _, booted := journal.DoneIn(u.Records, steps.Boot); booted && job.Health != "" {
		if done, err := a.outcome(r, job, disks); done || err != nil {
			return err
		}
	}
	return a.offerRollback(r, a.writeJob(r, job, rel.Manifest, disks, reader), disks)
}

// confirmTakeUp asks the operator, when attended, to take the run up, as a
// new plan is confirmed; unattended, a disk with no serial or WWID is
// refused.
func (a *Agent) confirmTakeUp(job *migrate.Job, target *inventory.Disk, name string) error {
	anonymous := job.Target.Anonymous()
	if a.Config.Unattended {
		if anonymous {
			return fmt.Errorf("%w: %s has no serial or WWID, only its partition table tells it from another disk; boot the key attended to take up %s", ErrTakeUpUnconfirmed, target.Path, name)
		}
		return nil
	}
	ask := roles.NewConsole(os.Stdin, a.Console)
	i, err := ask.Ask(ErrTakeUpUnconfirmed, fmt.Sprintf("Take up the unfinished run %s on %s (%s), as above?", name, target.Path, identity.Name(*target)),
		[]string{"yes, finish it", "no, stop here"})
	if err != nil {
		return err
	}
	if i != 0 {
		return fmt.Errorf("%w: stopped by the operator; the run is left on the media as it was", ErrTakeUpUnconfirmed)
	}
	return nil
}

// sameRelease finds again the release a taken-up job writes: signed by a
// trusted key, and the very manifest the job was made from (by the hash of
// the bytes whose signature was just checked).
func (a *Agent) sameRelease(r *run, job *migrate.Job) (*media.Release, error) {
	trusted, err := media.LoadTrusted(filepath.Join(a.root(), medialayout.TrustedDir))
	if err != nil {
		return nil, err
	}
	rels, refused := media.Releases(os.DirFS(r.media), trusted)
	for _, x := range refused {
		if x.Dir == job.Release {
			return nil, fmt.Errorf("%w: %s: %w", ErrReleaseChanged, x.Dir, x.Err)
		}
	}
	for i, rel := range rels {
		if rel.Dir != job.Release {
			continue
		}
		if rel.SHA256 != job.ManifestSHA256 {
			return nil, fmt.Errorf("%w: %s: manifest SHA-256 %s, the job was made from %s", ErrReleaseChanged, rel.Dir, rel.SHA256, job.ManifestSHA256)
		}
		return &rels[i], nil
	}
	return nil, fmt.Errorf("%w: %s is gone", ErrReleaseChanged, job.Release)
}
