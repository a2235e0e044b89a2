package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/progress"
	"github.com/passeur/passeur/initramfs/reattach"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/initramfs/stream"
	"github.com/u-root/u-root/pkg/boot"
	"golang.org/x/sys/unix"
)

// reattachDetail is the reattach step's journaled result.
type reattachDetail struct {
	Entries []fstab.Entry      `json:"entries"`
	Skipped []reattach.Skipped `json:"skipped,omitempty"`
}

// migrate runs passeur.mode=migrate: it takes up the unfinished migration
// of a disk present here, or backs up the installed system, then writes
// the release, reattaches the data volumes, restores, and boots the new
// system. When the boot that took up a run ended it with the new system
// healthy, a repository's route goes on from that system: the next hop is
// taken in the same boot, and the box's last version ends the route
// quietly.
func (a *Agent) migrate(disks []inventory.Disk) error {
	if a.noMedia {
		return ErrMigrateNeedsMedia
	}
	took, err := a.takeUp(disks)
	if err != nil || took && !a.goesOn() {
		return err
	}
	if took {
		// The run ended well: what stops the route from going on now
		// (the box on its version, the repository out of reach, its
		// mirror behind) is said, not a failure. Nothing is written.
		a.want = "" // the repository says where the route goes from here
		err := a.obtain(disks)
		if errors.Is(err, ErrUpToDate) {
			a.Log.Printf("the route ends here: %v", err)
			return nil
		}
		if err != nil {
			a.Log.Printf("the route does not go on from here in this boot: %v", err)
			a.Events.Emit("route_stopped", map[string]string{"error": err.Error()})
			return nil
		}
	} else if err := a.obtain(disks); err != nil {
		return err
	}
	s, err := a.prepare(disks)
	defer s.close(a)
	if err != nil {
		return err
	}
	s.plan.Write(a.Console)
	a.Events.Emit("plan", s.plan)
	if err := a.confirm(s); err != nil {
		return err
	}
	sum := s.rel.SHA256
	r, err := a.open(s)
	if err != nil {
		return err
	}
	defer a.closeRun(r)
	var job *migrate.Job
	if detail, ok := r.j.Done(steps.Plan); ok {
		if err := json.Unmarshal(detail, &job); err != nil {
			return fmt.Errorf("%w: plan record: %w", journal.ErrCorrupt, err)
		}
	} else {
		name := filepath.Base(r.dir)
		job, err = migrate.NewJob(string(config.ModeMigrate), s.rel.Dir, sum, s.m, s.sys.Disk, s.pl, s.plan.Reattach, name+"\x00"+r.machine)
		if err != nil {
			return err
		}
		for _, id := range job.Identity {
			a.Log.Printf("kept partition %s", id)
		}
		job.Reinstall = s.sys.Version == s.m.Version.String()
		if err := r.j.Complete(steps.Plan, job); err != nil {
			return a.mediaErr(r, err)
		}
		a.reportApplying(s.m)
	}
	return a.migrateSteps(r, job, disks)
}

// goesOn reports whether the run this boot took up ended with the new
// system healthy, from a repository whose route may go on.
func (a *Agent) goesOn() bool {
	return a.healthy && !a.thenRollback && a.Config.Repo != ""
}

// migrateSteps runs a planned migration's steps that its journal has not
// done, in the order of the table of steps: the release checked, the save
// for rollback, the backup, then the writing steps.
func (a *Agent) migrateSteps(r *run, job *migrate.Job, disks []inventory.Disk) error {
	s := r.s
	if err := a.step(r, steps.Release, func() (any, error) {
		return map[string]int{"artifacts": len(s.m.Artifacts)}, nil // checked before the run began
	}); err != nil {
		return err
	}
	if err := a.step(r, steps.Save, func() (any, error) { return a.saveForRollback(r, job, s.rollback, s.sys.Disk.Path) }); err != nil {
		return err
	}
	if _, err := a.backupSteps(r); err != nil {
		return err
	}
	if err := a.uploadBackup(r); err != nil {
		return err
	}
	return a.offerRollback(r, a.writeJob(r, job, s.m, disks, s.volumes()), disks)
}

// offerRollback, when a migration failed after writing began, says how to
// roll it back and, attended, offers to do it now.
func (a *Agent) offerRollback(r *run, err error, disks []inventory.Disk) error {
	if err == nil || !writing(r.j.Records) {
		return err
	}
	if _, serr := sourceOf(journal.Run{Dir: r.dir, Records: r.j.Records}, disks); serr != nil {
		a.Log.Printf("the migration failed after writing began; the next boot from the key takes it up (no rollback save: %v)", serr)
		return err
	}
	a.Log.Printf("the migration failed after writing began: the next boot from the key takes it up, or passeur.mode=rollback puts the previous system back byte for byte")
	if !a.Config.Unattended {
		ask := roles.NewConsole(os.Stdin, a.Console)
		i, aerr := ask.Ask(errors.New("no choice"), fmt.Sprintf("The migration failed after writing began (%v). Roll back to the previous system now?", err),
			[]string{"yes, roll back now", "no, try again at the next boot"})
		if a.thenRollback = aerr == nil && i == 0; a.thenRollback {
			a.Fail(string(config.ModeMigrate), err)
			return nil
		}
	}
	return err
}

// confirm asks the operator to go on, unless the run is unattended.
func (a *Agent) confirm(s *session) error {
	if a.Config.Unattended {
		return nil
	}
	ask := roles.NewConsole(os.Stdin, a.Console)
	i, err := ask.Ask(errors.New("not confirmed"), fmt.Sprintf("Migrate %s to %s as planned above?", s.sys.Disk.Path, s.plan.Release), []string{"yes, go on", "no, stop here"})
	if err != nil {
		return err
	}
	if i != 0 {
		return errors.New("stopped by the operator before anything was written")
	}
	return nil
}

// checkArtifacts checks every artifact of m as stored in dir of the media
// (size and SHA-256), before anything is written anywhere.
func (a *Agent) checkArtifacts(files fs.FS, dir string, m *release.Manifest) error {
	start := time.Now()
	for _, art := range m.Artifacts {
		if err := art.VerifyStored(files, dir); err != nil {
			return fmt.Errorf("release %s: %w", dir, err)
		}
	}
	a.Log.Printf("release %s: %d artifacts verified as stored, in %.1f s", dir, len(m.Artifacts), time.Since(start).Seconds())
	return nil
}

// writing reports whether a journal shows the target disk being written:
// from then on the old system may be gone, and only the journal says what
// to do.
func writing(recs []journal.Record) bool {
	for _, r := range recs {
		if steps.WritesSystem(r.Step) {
			return true
		}
	}
	return false
}

// writeJob does the job's steps that the journal has not done: reattach
// (read-only checks), the images, the state partition, the table, the
// boot. Every step starts over when it was cut.
func (a *Agent) writeJob(r *run, job *migrate.Job, m *release.Manifest, disks []inventory.Disk, reader volumeReader) error {
	install := job.Mode == string(config.ModeInstall)
	if install {
		if err := reader.Close(); err != nil {
			return err
		}
		if err := a.formatData(r, job, disks); err != nil {
			return err
		}
	}
	if err := a.step(r, steps.Reattach, func() (any, error) {
		if install { // volumes passeur just made: nothing to check
			entries, skipped := reattach.Entries(job.Reattach, m)
			return reattachDetail{Entries: entries, Skipped: skipped}, nil
		}
		return a.reattach(job, m, disks, reader)
	}); err != nil {
		return err
	}
	if err := reader.Close(); err != nil { // nothing of the target may stay mounted
		return err
	}
	target, err := job.Target.Find(disks)
	if err != nil {
		return err
	}
	f, err := migrate.OpenTarget(target.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	sys := a.newSystem(job, target.Path)
	relDir := filepath.Join(r.media, job.Release)
	for _, e := range job.Extents {
		if e.Role != release.RoleArtifact {
			continue
		}
		step := steps.Write + e.Name
		begun := journal.Began(r.j.Records, step)
		isESP := false
		if g, _ := e.TypeGUID(); g == release.TypeGUIDs["esp"] && a.staged != nil {
			isESP = true
			if _, done := r.j.Done(steps.WayBack); !done && a.own == nil && (a.efivars != "" || efivar.UEFI()) {
				a.prepareWayBack() // before the ESP's write: what follows it is then a copy
			}
		}
		if err := a.step(r, step, func() (any, error) { return a.writeImage(f, e, m, relDir, job.Reinstall || begun) }); err != nil {
			return err
		}
		// Right after the new ESP: the rescue where its loader starts it.
		if isESP {
			if err := a.step(r, steps.WayBack, func() (any, error) { return a.armWayBack(sys, e, target) }); err != nil {
				return err
			}
		}
	}
	if len(job.BootUUIDs) > 0 {
		if err := a.step(r, steps.Entry, func() (any, error) {
			changed, err := sys.RewriteBootEntries()
			return map[string]any{"entries": changed, "partuuids": job.BootUUIDs}, err
		}); err != nil {
			return err
		}
	}
	if job.State != "" {
		st, _ := job.Extent(job.State)
		if err := a.step(r, steps.State, func() (any, error) {
			return map[string]string{"uuid": job.StateUUID}, migrate.MakeFilesystem(f, st, job.StateUUID)
		}); err != nil {
			return err
		}
		if err := a.step(r, steps.Fstab, func() (any, error) { return a.writeFstab(r, sys) }); err != nil {
			return err
		}
		if !install {
			if err := a.step(r, steps.Restore, func() (any, error) { return a.restoreInto(r, job, m, sys) }); err != nil {
				return err
			}
		}
	}
	if err := a.step(r, steps.Table, func() (any, error) {
		if err := job.WriteTable(f); err != nil {
			return nil, err
		}
		return map[string]any{"disk_guid": job.DiskGUID, "partitions": len(job.Extents)}, nil
	}); err != nil {
		return err
	}
	if err := migrate.Rescan(f); err != nil {
		a.Log.Printf("%v (the new system reads it at boot)", err)
	}
	f.Close()
	return a.bootNew(r, job, sys)
}

// reattach checks each data volume of the old system read-only and makes
// the new system's fstab entries; a volume missing or unreadable is left
// out, named.
func (a *Agent) reattach(job *migrate.Job, m *release.Manifest, disks []inventory.Disk, reader volumeReader) (any, error) {
	var ok []roles.Volume
	var bad []reattach.Skipped
	for _, v := range job.Reattach {
		dev, err := inventory.Find(disks, "UUID="+v.UUID)
		if err == nil {
			var files fs.FS
			if files, err = reader.Files(dev, v.FSType); err == nil {
				_, err = fs.ReadDir(files, ".")
			}
		}
		if err != nil {
			bad = append(bad, reattach.Skipped{Volume: v, Reason: err.Error()})
			a.Log.Printf("reattach: %s (%s %s) left out: %v", v.Spec, v.FSType, v.UUID, err)
			continue
		}
		v.Device = dev
		ok = append(ok, v)
	}
	entries, skipped := reattach.Entries(ok, m)
	for _, e := range entries {
		a.Log.Printf("reattach: %s on %s (%s, %s)", e.Spec, e.Mountpoint, e.Type, e.Options)
	}
	for _, s := range skipped {
		a.Log.Printf("reattach: %s left out: %s", s.Volume.Spec, s.Reason)
	}
	return reattachDetail{Entries: entries, Skipped: append(bad, skipped...)}, nil
}

// writeImage writes the artifact of partition e in one pass: decompressed,
// hashed and written as it streams; the step is done only when the hash
// matched (and, with passeur.verify=readback, the read-back too).
func (a *Agent) writeImage(f *os.File, e release.Extent, m *release.Manifest, relDir string, skip bool) (any, error) {
	var art *release.Artifact
	for i := range m.Artifacts {
		if m.Artifacts[i].Name == e.Artifact {
			art = &m.Artifacts[i]
		}
	}
	if art == nil {
		return nil, fmt.Errorf("%w: %q", release.ErrUnknownArtifact, e.Artifact)
	}
	rc, err := art.Open(relDir)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	p := &progress.Progress{Label: "write " + e.Name, Out: a.Console, Every: 500 * time.Millisecond,
		Event: func(r progress.Report) { a.Events.Emit("progress", r) }}
	p.Start(art.Size)
	var last int64
	res, err := stream.Write(f, e.Start, e.Bytes, rc, stream.Options{SkipUnchanged: skip, ReadBack: a.Config.ReadBack, WantSHA256: art.SHA256,
		Progress: func(done int64) { p.Add(done - last); last = done }})
	if err != nil {
		return nil, fmt.Errorf("partition %s: %w", e.Name, err)
	}
	p.Finish()
	a.Log.Printf("%s: %d bytes at %d verified (SHA-256 %s…), %d written, %d unchanged, in %.1f s",
		e.Name, res.Bytes, e.Start, art.SHA256[:12], res.Written, res.Skipped, res.Seconds)
	return map[string]any{"artifact": art.Name, "sha256": art.SHA256, "result": res, "readback": a.Config.ReadBack}, nil
}

// writeFstab writes the reattach step's entries into the state partition,
// and beside them what the box remembers of its repository.
func (a *Agent) writeFstab(r *run, sys newsys.System) (any, error) {
	var d reattachDetail
	if raw, ok := r.j.Done(steps.Reattach); ok {
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%w: reattach record: %w", journal.ErrCorrupt, err)
		}
	}
	if err := sys.WriteFstab(d.Entries); err != nil {
		return nil, err
	}
	n, err := rememberOnState(r.media, sys)
	return map[string]int{"entries": len(d.Entries), "skipped": len(d.Skipped), "repository_files": n}, err
}

// rememberOnState copies the repository state the media remembers (see
// obtain) onto the new system's state partition, where the next rescue
// session finds it even from another key or a netboot (see
// rememberedOnDisks). Nothing when the media remembers none.
func rememberOnState(media string, sys newsys.System) (int, error) {
	if _, err := os.Stat(filepath.Join(media, medialayout.RepoStateDir)); err != nil {
		return 0, nil
	}
	src := filepath.Join(os.TempDir(), "passeur-remember")
	os.RemoveAll(src)
	defer os.RemoveAll(src)
	if err := loadRepoState(os.DirFS(media), src, nil); err != nil { // read bounded: the media is not trusted
		return 0, err
	}
	umount, err := sys.MountState(false)
	if err != nil {
		return 0, err
	}
	n, err := saveRepoState(src, filepath.Join(sys.Path(newsys.StateDir), medialayout.RepoStateDir))
	return n, errors.Join(err, umount())
}

// restoreInto restores the run's backup into the state partition's
// restore/ folder, unless the operator chose a fresh start: checked whole
// first (this disk's backup, only the release's configuration and index
// paths, no link to climb through), the state mounted only then.
func (a *Agent) restoreInto(r *run, job *migrate.Job, m *release.Manifest, sys newsys.System) (any, error) {
	if !a.Config.Restore {
		a.Log.Printf("passeur.restore=no: the new system starts fresh; the backup stays on the media")
		return map[string]any{"restored": false}, nil
	}
	ids, err := identities(r.media)
	if err != nil {
		return nil, err
	}
	if err := backup.Verify(r.dir, nil); err != nil {
		return nil, err
	}
	// The old root is gone by now: the disk alone says the backup is this
	// machine's (its journal's identity was checked when it was taken up).
	o := restoreOptions(m, backup.MachineID{WWID: job.Target.WWID, Serial: job.Target.Serial}, ids)
	o.Map = func(p string) string { return path.Join("/restore", p) }
	o.Progress.Out = a.Console
	o.Secret = r.secret // the old system's, when this boot read it; after a cut, integrity and identity only
	plan, err := backup.Prepare(r.dir, o)
	if err != nil {
		return nil, err
	}
	umount, err := sys.MountState(false)
	if err != nil {
		return nil, err
	}
	done, err := plan.Restore(sys.Path(newsys.StateDir))
	if err == nil { // the new system keeps the secret, and the backup it was restored from is sealed with it
		var secret []byte
		if secret, err = keepSecret(sys.Path(newsys.StateDir), r.secret); err == nil {
			err = backup.Seal(r.dir, secret)
		}
	}
	err = errors.Join(err, umount())
	var paths []string
	for _, e := range done {
		paths = append(paths, e.Path)
	}
	return map[string]any{"restored": true, "entries": len(done), "paths": paths}, err
}

// restoreOptions are what a restore of product m on machine may write:
// the product's configuration and index paths and the old fstab passeur
// backs up beside them, owned by root, nothing setuid.
func restoreOptions(m *release.Manifest, machine backup.MachineID, ids []age.Identity) backup.RestoreOptions {
	paths := []string{"/etc/fstab"}
	if m != nil {
		paths = append(append(paths, m.Config...), m.Index...)
	}
	return backup.RestoreOptions{Identities: ids, Paths: paths, Machine: machine, Progress: &progress.Progress{Label: "restore"}}
}

// bootNew loads the new system's kernel from its boot entry and jumps to
// it (kexec); when that cannot be done, it reboots.
func (a *Agent) bootNew(r *run, job *migrate.Job, sys newsys.System) error {
	a.disarmWayBack(r.j.Records, sys)
	if err := r.j.Begin(steps.Boot, nil); err != nil {
		return a.mediaErr(r, err)
	}
	poweroff := a.Config.Then == config.ThenPoweroff
	var img *boot.LinuxImage
	var err error
	if !poweroff {
		if img, err = sys.LoadBootEntry(a.Log); err != nil {
			r.j.Fail(steps.Boot, err)
			a.Log.Printf("kexec: %v: rebooting instead", err)
		}
	}
	detail := map[string]string{"how": "reboot"}
	switch {
	case poweroff: // passeur.then=poweroff: the next power-on starts it
		detail = map[string]string{"how": "poweroff"}
	case img != nil:
		detail = map[string]string{"how": "kexec", "entry": img.Label(), "cmdline": img.Cmdline}
	}
	if err := r.j.Complete(steps.Boot, detail); err != nil {
		return a.mediaErr(r, err)
	}
	if job.Health == "" {
		if err := r.j.Finish(map[string]string{"outcome": "new system started", "how": detail["how"]}); err != nil {
			return err
		}
	}
	if poweroff {
		a.Log.Printf("the new system is written: powering off (passeur.then=poweroff); it starts at the next power-on, and the run ends with its health report")
	} else {
		a.Log.Printf("booting the new system (%s); the run ends with its health report", detail["how"])
	}
	a.Events.Emit("boot", detail)
	if err := a.closeRun(r); err != nil {
		return a.mediaErr(r, err)
	}
	if a.staged != nil && r.s != nil && r.s.reader != nil {
		r.s.reader.Close() // its read-only binds of the staging volume hold it too
	}
	a.releaseStaged()
	if a.restart != nil {
		return a.restart(img)
	}
	unix.Sync()
	if poweroff {
		return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	if img != nil {
		if err := boot.Execute(); err != nil {
			a.Log.Printf("kexec: %v: rebooting instead", err)
		}
	}
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// volumeReader hands out the files of the installed system's volumes,
// mounted read-only (roles.MountReader in the rescue).
type volumeReader interface {
	Files(dev, fstype string) (fs.FS, error)
	Close() error
}

// outcomeEvent is the payload of the "outcome" event.
type outcomeEvent struct {
	Run    string          `json:"run"`
	OK     bool            `json:"ok"`
	Health json.RawMessage `json:"health"`
	Backup string          `json:"backup,omitempty"`
	// Rollback tells that the media holds the previous system's save.
	Rollback bool   `json:"rollback,omitempty"`
	Message  string `json:"message"`
}

// outcome reads, at the rescue boot after a migration booted the new
// system, the health report that system left on its state partition and
// ends the run with it. It reports false when there is none yet: the new
// system did not get that far, and is booted again.
func (a *Agent) outcome(r *run, job *migrate.Job, disks []inventory.Disk) (bool, error) {
	target, err := job.Target.Find(disks)
	if err != nil {
		return false, err
	}
	data, ok, err := a.newSystem(job, target.Path).Health()
	if errors.Is(err, newsys.ErrNoHealth) {
		a.Log.Printf("%v: booting it again", err)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	name, _ := filepath.Rel(r.media, r.dir)
	ev := outcomeEvent{Run: name, OK: ok, Health: json.RawMessage(data)}
	if ev.OK {
		ev.Message = "migrated: the new system reported healthy"
	} else {
		ev.Backup = name
		ev.Message = fmt.Sprintf("the new system failed its health check; the backup %s holds the previous configuration and index: passeur.mode=restore passeur.backup=%s puts them back", name, filepath.Base(r.dir))
		if _, err := sourceOf(journal.Run{Dir: r.dir, Records: r.j.Records}, disks); err == nil {
			ev.Rollback = true
			ev.Message += "; passeur.mode=rollback puts the previous system back byte for byte, data partitions untouched"
		}
		r.j.Fail(steps.Health, errors.New(ev.Message))
	}
	if err := r.j.Finish(map[string]any{"outcome": ev.Message, "ok": ev.OK, "health": ev.Health}); err != nil {
		return true, a.mediaErr(r, err)
	}
	a.Log.Printf("%s: %s", name, ev.Message)
	a.Events.Emit("outcome", ev)
	a.report(ev)
	a.healthy = ev.OK
	if ev.OK {
		a.cleanStaged(r.media)
	}
	if ev.Rollback && !a.Config.Unattended {
		ask := roles.NewConsole(os.Stdin, a.Console)
		i, err := ask.Ask(errors.New("no choice"), "The new system failed its health check. Roll back to the previous system now?",
			[]string{"yes, roll back now", "no, keep the new system (passeur.mode=rollback later)"})
		a.thenRollback = err == nil && i == 0
	}
	return true, nil
}

// reportEvent is the payload of the "report" event: the outcome sent to
// the fleet server, or why it was not.
type reportEvent struct {
	URL     string `json:"url"`
	Box     string `json:"box"`
	State   string `json:"state"`
	Version string `json:"version"`
	Error   string `json:"error,omitempty"`
}

// report sends a migration's outcome, with the new system's health
// report, to the fleet server passeur.report= names: after the health
// report, never before. A server that cannot be reached costs a logged
// line, never the run: the outcome stays on the media.
func (a *Agent) report(ev outcomeEvent) {
	c := a.Config
	if !c.Reports() {
		return
	}
	var h struct {
		Product string `json:"product"`
		Version string `json:"version"`
	}
	json.Unmarshal(ev.Health, &h)
	r := wire.Report{Box: c.Box, Product: h.Product, Version: h.Version, State: wire.StateDone, Health: ev.Health, At: time.Now().UTC()}
	if !ev.OK {
		r.State, r.Step, r.Error = wire.StateFailed, steps.Health, ev.Message
	}
	a.send(r)
}

// reportApplying tells the fleet server, when passeur.report= names one,
// that the box's staged release is being applied: before the first write.
func (a *Agent) reportApplying(m *release.Manifest) {
	c := a.Config
	if a.staged == nil || !c.Reports() {
		return
	}
	a.send(wire.Report{Box: c.Box, Product: m.Product, Version: m.Version.String(), State: wire.StateApplying, Step: steps.Plan, At: time.Now().UTC()})
}

// send sends r to the fleet server, and says how it went: a box that
// cannot reach it goes on, and reports at its next run.
func (a *Agent) send(r wire.Report) {
	c := a.Config
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	re := reportEvent{URL: c.Report, Box: c.Box, State: r.State, Version: r.Version}
	if err := wire.Send(ctx, c.Report, c.ReportToken, r); err != nil {
		re.Error = err.Error()
		a.Log.Printf("report to %s: %v", c.Report, err)
	} else {
		a.Log.Printf("reported %s %s (%s) to %s", r.Product, r.Version, r.State, c.Report)
	}
	a.Events.Emit("report", re)
}

// newSystem is the job's new system on disk, mounted the agent's way
// under /run/passeur/new.
func (a *Agent) newSystem(job *migrate.Job, disk string) newsys.System {
	dir := "/run/passeur/new"
	if a.runRoot != "" {
		dir = filepath.Join(a.runRoot, "new")
	}
	return newsys.System{Disk: disk, Job: job, Mount: a.mounter(), Dir: dir}
}

// mounter is how the new system's partitions are mounted.
func (a *Agent) mounter() newsys.Mounter {
	if a.mount == nil {
		return newsys.Loop{}
	}
	return a.mount
}
