package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/progress"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/rollback"
	"github.com/passeur/passeur/initramfs/steps"
	"golang.org/x/sys/unix"
)

// saveDir is where, in a migration's run folder, its rollback save lies.
const saveDir = "rollback"

// ErrNoRollback is returned by passeur.mode=rollback when no migration on
// the media can be rolled back on this machine.
var ErrNoRollback = errors.New("no migration on the install media can be rolled back on this machine")

// saveDetail is the journaled result of the save step.
type saveDetail struct {
	Available bool   `json:"available"`
	Why       string `json:"why,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Stored    int64  `json:"stored,omitempty"`
	Pieces    int    `json:"pieces,omitempty"`
}

// saveForRollback saves on the media every byte of the system disk the
// job will overwrite, read back with the page cache dropped, when
// preflight found room; otherwise the operator is asked (unattended: the
// run goes on without, and says so).
func (a *Agent) saveForRollback(r *run, job *migrate.Job, room bool, disk string) (any, error) {
	regions, err := job.Overwrites()
	if err != nil {
		return nil, err
	}
	if !room {
		why := fmt.Sprintf("the media has no room for the %s the migration overwrites", inventory.HumanSize(rollback.Size(regions)))
		a.Log.Printf("rollback not available: %s", why)
		if !a.Config.Unattended {
			ask := roles.NewConsole(os.Stdin, a.Console)
			i, err := ask.Ask(errors.New("no rollback"), "There is no room on the key to save the old system first: if the migration fails, only the backup of its configuration and index remains. Go on without the way back?",
				[]string{"go on without rollback", "stop here, change nothing"})
			if err != nil || i != 0 {
				return nil, errors.Join(errors.New("stopped by the operator: no room for the rollback save"), err)
			}
		}
		return saveDetail{Why: why}, nil
	}
	f, err := os.Open(disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &progress.Progress{Label: "save for rollback", Out: a.Console, Every: 500 * time.Millisecond}
	p.Start(rollback.Size(regions))
	var last int64
	dir := filepath.Join(r.dir, saveDir)
	m, err := rollback.Save(f, job.Target.Size, regions, dir, func(n int64) { p.Add(n - last); last = n })
	if err != nil {
		return nil, err
	}
	p.Finish()
	unix.Sync()
	if err := a.dropCaches(); err != nil {
		a.Log.Printf("read-back from the page cache: %v", err)
	}
	if _, err := rollback.Load(dir, job.Target.Size); err != nil {
		return nil, fmt.Errorf("read back the rollback save: %w", err)
	}
	var stored int64
	for _, pc := range m.Pieces {
		stored += pc.StoredSize
	}
	a.Log.Printf("rollback: %s of the system disk saved in %d pieces (%s stored), read back and verified",
		inventory.HumanSize(m.Bytes()), len(m.Pieces), inventory.HumanSize(stored))
	return saveDetail{Available: true, Bytes: m.Bytes(), Stored: stored, Pieces: len(m.Pieces)}, nil
}

// rollbackSource is a migration on the media that can be rolled back
// here: its job, and its disk present.
type rollbackSource struct {
	dir    string // the migration's run folder
	job    *migrate.Job
	target *inventory.Disk
}

// findRollback finds the newest migration on the media whose save is
// complete and whose system disk is here, not rolled back yet.
func findRollback(media string, disks []inventory.Disk) (*rollbackSource, error) {
	runs, err := journal.All(filepath.Join(media, medialayout.BackupDir, "*", "*"))
	if err != nil {
		return nil, err
	}
	// The newest migration of a disk that is here decides: an older one
	// is never put back over it.
	for _, u := range runs {
		if u.Header.Mode != string(config.ModeMigrate) {
			continue
		}
		plan, ok := journal.DoneIn(u.Records, steps.Plan)
		var job *migrate.Job
		if !ok || json.Unmarshal(plan, &job) != nil || job == nil {
			continue
		}
		if _, err := job.Target.Find(disks); err != nil {
			continue
		}
		src, err := sourceOf(u, disks)
		if err != nil {
			return nil, fmt.Errorf("%w: the last migration of %s, %s: %w", ErrNoRollback, job.Target, filepath.Base(u.Dir), err)
		}
		return src, nil
	}
	return nil, ErrNoRollback
}

// ErrRolledBack says the migration was rolled back already.
var ErrRolledBack = errors.New("already rolled back")

// sourceOf checks that the migration run u can be rolled back here: it
// began writing its disk, saved what it overwrote first, and its disk is
// here.
func sourceOf(u journal.Run, disks []inventory.Disk) (*rollbackSource, error) {
	if _, done := journal.DoneIn(u.Records, steps.RolledIn); done {
		return nil, ErrRolledBack
	}
	if !writing(u.Records) {
		return nil, errors.New("it wrote nothing on its disk")
	}
	raw, ok := journal.DoneIn(u.Records, steps.Save)
	var saved saveDetail
	if !ok || json.Unmarshal(raw, &saved) != nil || !saved.Available {
		return nil, errors.New("no rollback save")
	}
	plan, ok := journal.DoneIn(u.Records, steps.Plan)
	var job *migrate.Job
	if !ok || json.Unmarshal(plan, &job) != nil || job == nil {
		return nil, errors.New("no readable plan")
	}
	target, err := job.Target.Find(disks)
	if err != nil {
		return nil, err
	}
	return &rollbackSource{dir: u.Dir, job: job, target: target}, nil
}

// rollback runs passeur.mode=rollback: it takes up an unfinished rollback,
// or finds the newest migration of a disk here that can be rolled back,
// and puts that disk back as it was before the migration.
func (a *Agent) rollback(disks []inventory.Disk) error {
	r, err := a.mountAnyMedia(disks)
	if err != nil {
		return err
	}
	defer a.closeRun(r)
	runs, err := journal.Unfinished(filepath.Join(r.media, medialayout.BackupDir, "*", "*"))
	if err != nil {
		return a.mediaErr(r, err)
	}
	for _, u := range runs {
		if u.Header.Mode == string(config.ModeRollback) {
			if took, err := a.resumeRollback(r, u, disks); took || err != nil {
				return err
			}
		}
	}
	src, err := findRollback(r.media, disks)
	if err != nil {
		return err
	}
	return a.rollBack(r, src, "")
}

// mountAnyMedia mounts the install media found among disks read-write.
func (a *Agent) mountAnyMedia(disks []inventory.Disk) (*run, error) {
	reader := &roles.MountReader{Dir: "/run/passeur/find"}
	defer reader.Close()
	dev, _, err := media.Find(disks, reader)
	if err != nil {
		return nil, err
	}
	if err := reader.Release(dev); err != nil {
		return nil, err
	}
	r := &run{mediaDev: dev}
	return r, a.mountMediaDev(r)
}

// resumeRollback takes up the unfinished rollback u, when its migration
// and disk are here. It reports whether it took it.
func (a *Agent) resumeRollback(r *run, u journal.Run, disks []inventory.Disk) (bool, error) {
	raw, ok := journal.DoneIn(u.Records, steps.Plan)
	var from struct{ From string }
	if !ok || json.Unmarshal(raw, &from) != nil || !isRunPath(from.From) {
		return false, nil
	}
	runs, err := journal.All(filepath.Join(r.media, filepath.FromSlash(from.From)))
	if err != nil || len(runs) != 1 {
		return false, nil
	}
	src, err := sourceOf(runs[0], disks)
	if errors.Is(err, ErrRolledBack) { // cut after its last record in the migration's journal
		j, err := journal.Open(filepath.Join(u.Dir, journal.File))
		if err == nil {
			err = errors.Join(j.Finish(map[string]string{"outcome": "rolled back", "from": from.From}), j.Close())
		}
		return true, err
	}
	if err != nil {
		a.Log.Printf("unfinished rollback %s: %v", u.Dir, err)
		return false, nil
	}
	return true, a.rollBack(r, src, u.Dir)
}

// ErrNotThisDisk refuses a rollback onto a disk that is not in a state
// the migration could have left.
var ErrNotThisDisk = errors.New("the disk is not one the migration wrote")

// checkTarget checks, before a byte is written, that the rollback's disk
// is not the install media and that every range of its table is either
// what the migration wrote there or what it replaced (a rollback cut by a
// power loss may have put some back): a save on the media never puts its
// bytes on a disk the migration did not write.
func checkTarget(r *run, src *rollbackSource, m *rollback.Manifest, save string) error {
	if r.mediaDev == src.target.Path {
		return fmt.Errorf("%w: %s holds the install media", ErrNotThisDisk, src.target.Path)
	}
	for _, p := range src.target.Partitions {
		if p.Path == r.mediaDev {
			return fmt.Errorf("%w: %s holds the install media", ErrNotThisDisk, src.target.Path)
		}
	}
	im, err := src.job.TableImage()
	if err != nil {
		return err
	}
	f, err := os.Open(src.target.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, w := range im {
		cur := make([]byte, len(w.Data))
		if _, err := f.ReadAt(cur, w.Offset); err != nil {
			return fmt.Errorf("read %s at %d: %w", src.target.Path, w.Offset, err)
		}
		old, err := m.Read(save, w.Offset, int64(len(w.Data)))
		if err != nil {
			return err
		}
		if !bytes.Equal(cur, w.Data) && !bytes.Equal(cur, old) {
			return fmt.Errorf("%w: %s: its table's bytes at %d are neither those the migration wrote nor those it replaced", ErrNotThisDisk, src.target.Path, w.Offset)
		}
	}
	return nil
}

// isRunPath tells whether p, read from the media, names a run folder
// (Backup/<host>/<stamp>) and nothing else: no other folder, no pattern.
func isRunPath(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[0] != medialayout.BackupDir {
		return false
	}
	for _, s := range parts {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, `*?[\`) {
			return false
		}
	}
	return true
}

// rollBack writes the save of src back on its disk, journaled piece by
// piece in a rollback run of its own (dir, when taken up), then notes it
// in the migration's journal.
func (a *Agent) rollBack(r *run, src *rollbackSource, dir string) error {
	save := filepath.Join(src.dir, saveDir)
	m, err := rollback.Load(save, src.target.Size)
	if err != nil {
		return err
	}
	// The job comes from the media: the regions it puts back are only the
	// partitions the verified release's layout writes, never a kept one.
	rel, err := a.sameRelease(r, src.job)
	if err != nil {
		return err
	}
	if err := src.job.CheckRoles(rel.Manifest); err != nil {
		return fmt.Errorf("%w: %w", migrate.ErrRunMismatch, err)
	}
	regions, err := src.job.Overwrites()
	if err == nil {
		err = m.Tiles(regions)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", rollback.ErrBadSave, err)
	}
	if err := checkTarget(r, src, m, save); err != nil {
		return err
	}
	from, _ := filepath.Rel(r.media, src.dir)
	from = filepath.ToSlash(from)
	a.Log.Printf("rollback: %s (%s) goes back to what it was before the migration %s: %s in %d pieces; its kept data partitions are not touched",
		src.target.Path, identity.Name(*src.target), from, inventory.HumanSize(m.Bytes()), len(m.Pieces))
	if dir == "" && !a.Config.Unattended {
		ask := roles.NewConsole(os.Stdin, a.Console)
		i, err := ask.Ask(errors.New("rollback not confirmed"), fmt.Sprintf("Put %s back as it was before %s? The new system, and what it stored on its own partitions, will be gone.", src.target.Path, from),
			[]string{"yes, roll back", "no, stop here"})
		if err != nil {
			return err
		}
		if i != 0 {
			return errors.New("stopped by the operator before anything was written")
		}
	}
	r.host = filepath.Base(filepath.Dir(src.dir))
	r.machine = src.job.Target.String()
	if dir == "" {
		stamp := backup.Stamp(time.Now())
		dir = filepath.Join(filepath.Dir(src.dir), stamp+"-rollback")
		for i := 2; exists(dir); i++ {
			dir = filepath.Join(filepath.Dir(src.dir), fmt.Sprintf("%s-rollback-%d", stamp, i))
		}
		if r.j, err = journal.Create(filepath.Join(dir, journal.File), journal.Header{Mode: string(config.ModeRollback), Machine: r.machine, Host: r.host}); err != nil {
			return err
		}
	} else if r.j, err = journal.Open(filepath.Join(dir, journal.File)); err != nil {
		return a.mediaErr(r, err)
	}
	r.dir = dir
	if err := a.attach(r, "console.log"); err != nil {
		return err
	}
	if err := a.step(r, steps.Plan, func() (any, error) {
		return map[string]any{"from": from, "target": src.job.Target, "pieces": len(m.Pieces), "bytes": m.Bytes()}, nil
	}); err != nil {
		return err
	}
	f, err := migrate.OpenTarget(src.target.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	// The migration's journal says, before the first piece, that its disk
	// is being put back: it is never taken up again.
	mj, err := journal.Open(filepath.Join(src.dir, journal.File))
	if err == nil && !journal.Began(mj.Records, steps.RolledIn) {
		err = mj.Begin(steps.RolledIn, map[string]string{"by": filepath.Base(dir)})
	}
	if mj != nil {
		err = errors.Join(err, mj.Close())
	}
	if err != nil {
		return a.mediaErr(r, err)
	}
	// Before the first piece: the old ESP, put back, may hold a rescue a
	// hand-off laid there, which no loader variable may name then.
	a.forgetRescue(efivar.Default, efivar.OneShot)
	p := &progress.Progress{Label: "rollback", Out: a.Console, Every: 500 * time.Millisecond}
	p.Start(m.Bytes())
	err = rollback.Restore(f, f.Sync, m, save,
		func(i int) bool { _, done := r.j.Done(steps.Piece + strconv.Itoa(i)); return done },
		func(i int, pc rollback.Piece) error {
			p.Add(pc.Length)
			return r.j.Complete(steps.Piece+strconv.Itoa(i), map[string]any{"offset": pc.Offset, "length": pc.Length, "stored_sha256": pc.StoredSHA256})
		})
	if err != nil {
		return a.mediaErr(r, err)
	}
	p.Finish()
	if err := migrate.Rescan(f); err != nil {
		a.Log.Printf("%v", err)
	}
	mj, err = journal.Open(filepath.Join(src.dir, journal.File))
	if err == nil {
		err = mj.Complete(steps.RolledIn, map[string]string{"by": filepath.Base(dir)})
		if err == nil && !mj.Finished() {
			err = mj.Finish(map[string]string{"outcome": "rolled back by " + filepath.Base(dir)})
		}
		err = errors.Join(err, mj.Close())
	}
	if err != nil {
		return a.mediaErr(r, err)
	}
	msg := fmt.Sprintf("%s is back as it was before the migration %s; its data partitions were not touched. Remove the key and restart: the previous system boots.", src.target.Path, from)
	if err := r.j.Finish(map[string]string{"outcome": msg, "from": from}); err != nil {
		return err
	}
	a.Log.Printf("rollback: %s", msg)
	a.Events.Emit("rollback", map[string]any{"ok": true, "from": from, "run": filepath.Base(dir), "message": msg})
	return nil
}
