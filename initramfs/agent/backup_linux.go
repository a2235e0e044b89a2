package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/progress"
	"github.com/passeur/passeur/initramfs/recovery"
	"github.com/passeur/passeur/initramfs/steps"
	"golang.org/x/sys/unix"
)

// Where the rescue system mounts what it writes to.
const (
	mediaMount  = "/run/passeur/media"
	targetMount = "/run/passeur/target"
)

// run is one run with its journal and its folder on the media.
type run struct {
	s        *session
	mediaDev string
	media    string // mount point of the media, read-write
	root     string // mount point of the installed root, read-only
	files    fs.FS  // its files, read inside it (package tree)
	// id is the machine as its backups record it (backup.MachineID).
	id backup.MachineID
	// secret is the installed system's backup secret, when passeur
	// installed it (findSecret): its backups are sealed with it, and a
	// restore onto it needs the seal.
	secret  []byte
	host    string
	machine string
	dir     string // the run's folder on the media
	j       *journal.Journal
}

// backupEvent is the payload of the "backup" event.
type backupEvent struct {
	Dir       string           `json:"dir"` // relative to the media's root
	Host      string           `json:"host"`
	Entries   int              `json:"entries"`
	Bytes     int64            `json:"bytes"`
	Encrypted bool             `json:"encrypted"`
	Resumed   bool             `json:"resumed"`
	Recovery  *recovery.Report `json:"recovery,omitempty"`
	Seconds   float64          `json:"seconds"`
}

type journalEvent struct {
	Run string `json:"run"`
	journal.Record
}

// backup backs up the installed system's configuration and index to the
// media, or takes up the unfinished backup of this machine found there.
// In recover mode, and whenever the index fails its own check, the index
// is rebuilt from the recordings and backed up beside the damaged one.
func (a *Agent) backup(disks []inventory.Disk) error {
	start := time.Now()
	s, err := a.prepare(disks)
	defer s.close(a)
	if err != nil {
		return err
	}
	r, err := a.open(s)
	if err != nil {
		return err
	}
	defer a.closeRun(r)
	ev, err := a.backupRun(r)
	if err != nil {
		return err
	}
	ev.Seconds = seconds(time.Since(start))
	a.Log.Printf("backup complete and verified: %s (%d entries, %d bytes)", ev.Dir, ev.Entries, ev.Bytes)
	if err := a.closeRun(r); err != nil {
		return a.mediaErr(r, err)
	}
	return a.Events.Emit("backup", ev)
}

// backupRun is a backup run's steps that its journal has not done, and
// its end.
func (a *Agent) backupRun(r *run) (backupEvent, error) {
	ev, err := a.backupSteps(r)
	if err != nil {
		return ev, err
	}
	return ev, r.j.Finish(map[string]string{"outcome": "backup complete", "backup": ev.Dir})
}

// backupSteps backs up, verifies and marks complete the run's backup,
// skipping what its journal has done: the first steps of a backup run and
// of a migration.
func (a *Agent) backupSteps(r *run) (backupEvent, error) {
	resumed := r.j.Resumed()
	ev := backupEvent{Host: r.host, Encrypted: len(a.Config.AgeRecipients) > 0, Resumed: resumed}
	ev.Dir, _ = filepath.Rel(r.media, r.dir)

	var rebuilt []recovery.File
	var damaged []string
	if _, done := r.j.Done(steps.Backup); !done {
		rep, files, bad, err := a.checkIndex(r)
		if err != nil {
			return ev, err
		}
		ev.Recovery, rebuilt, damaged = rep, files, bad
	}
	if err := a.step(r, steps.Backup, func() (any, error) { return a.storeBackup(r, rebuilt, damaged) }); err != nil {
		return ev, err
	}
	if err := a.step(r, steps.Verify, func() (any, error) {
		unix.Sync()
		if err := backup.Verify(r.dir, a.dropCaches); err != nil {
			return nil, err
		}
		sums, err := os.ReadFile(filepath.Join(r.dir, backup.SumsFile))
		return map[string]any{"files": bytes.Count(sums, []byte("\n")), "sha256sums": fmt.Sprintf("%x", sha256.Sum256(sums))}, err
	}); err != nil {
		return ev, err
	}
	if err := a.step(r, steps.Complete, func() (any, error) {
		if r.secret != nil {
			if err := backup.Seal(r.dir, r.secret); err != nil {
				return nil, err
			}
		}
		return map[string]bool{"sealed": r.secret != nil}, backup.MarkComplete(r.dir)
	}); err != nil {
		return ev, err
	}
	m, err := backup.Load(r.dir, nil)
	if err == nil {
		ev.Entries = len(m.Entries)
		for _, e := range m.Entries {
			ev.Bytes += e.Size
		}
	}
	return ev, nil
}

// mountMedia reads what names this machine's runs (host, identity) and
// mounts the media read-write.
func (a *Agent) mountMedia(s *session) (*run, error) {
	r := &run{s: s}
	var err error
	if r.root, err = s.reader.SystemPoint(s.sys); err != nil {
		return nil, err
	}
	if r.files, err = s.sys.Files(s.reader); err != nil {
		return nil, err
	}
	host, _ := fs.ReadFile(r.files, "etc/hostname")
	r.secret = findSecret(s.reader, s.sys.Disk)
	r.host = backup.HostName(string(host))
	r.machine = identity.Name(s.sys.Disk)
	r.id = backup.MachineID{WWID: s.sys.Disk.WWID, Serial: s.sys.Disk.Serial}
	// The filesystem backed up tells this machine's installs apart: the
	// root, or the state of an install that lays it over a read-only root
	// (a squashfs has no UUID).
	backedUp := s.sys.Root
	if s.sys.State != "" {
		backedUp = s.sys.State
	}
	if root := inventory.FSOf(s.disks, backedUp); root != nil && root.UUID != "" {
		r.machine += ", root " + root.UUID
		r.id.RootUUID = root.UUID
	}
	if r.mediaDev, err = s.mediaDevice(); err != nil {
		return nil, err
	}
	if err := s.reader.Release(r.mediaDev); err != nil {
		return nil, err
	}
	return r, a.mountMediaDev(r)
}

// mountMediaDev mounts the media's filesystem r.mediaDev read-write.
func (a *Agent) mountMediaDev(r *run) error {
	if err := media.Mount(r.mediaDev, mediaMount); err != nil {
		return err
	}
	r.media = mediaMount
	return nil
}

// open mounts the media and takes up this machine's unfinished run, or
// starts a new one in a new folder.
func (a *Agent) open(s *session) (*run, error) {
	r, err := a.mountMedia(s)
	if err != nil {
		return nil, err
	}
	hostDir := filepath.Join(r.media, medialayout.BackupDir, r.host)
	if r.dir, err = journal.FindUnfinished(hostDir, string(a.Config.Mode), r.machine); err != nil {
		return r, media.Failure(err)
	}
	if r.dir != "" {
		a.Log.Printf("taking up the unfinished run %s", r.dir)
		r.j, err = journal.Open(filepath.Join(r.dir, journal.File))
	} else {
		stamp := backup.Stamp(time.Now())
		r.dir = filepath.Join(hostDir, stamp)
		for i := 2; exists(r.dir); i++ {
			r.dir = filepath.Join(hostDir, fmt.Sprintf("%s-%d", stamp, i))
		}
		r.j, err = journal.Create(filepath.Join(r.dir, journal.File), r.header(string(a.Config.Mode)))
	}
	if err != nil {
		return r, a.mediaErr(r, err)
	}
	return r, a.attach(r, "console.log")
}

func (r *run) header(mode string) journal.Header {
	return journal.Header{Mode: mode, Machine: r.machine, Host: r.host, Release: r.s.release()}
}

// attach turns the run's journal records into events, starting with its
// latest (the header, or the taking up), and saves the console log, from
// boot on, in the run's folder.
func (a *Agent) attach(r *run, logName string) error {
	name, _ := filepath.Rel(r.media, r.dir)
	r.j.Emit = func(rec journal.Record) {
		if rec.State == "note" {
			return // one per file: the console has the progress
		}
		a.Events.Emit("journal", journalEvent{Run: name, Record: rec})
	}
	r.j.Emit(r.j.Records[len(r.j.Records)-1])
	return a.mediaErr(r, a.runLog.SaveTo(filepath.Join(r.dir, freshName(r.dir, logName))))
}

// freshName is logName, or console.2.log and so on when a boot before this
// one (cut by a power loss) left it: its log is never appended to. A log
// growing, unsynced, beside the synced journal may be left by the cut with
// a size its cluster chain does not hold, and the kernel sets the whole
// key read-only the moment that file is written again.
func freshName(dir, logName string) string {
	ext := filepath.Ext(logName)
	name := logName
	for i := 2; exists(filepath.Join(dir, name)) && i < 1000; i++ {
		name = fmt.Sprintf("%s.%d%s", strings.TrimSuffix(logName, ext), i, ext)
	}
	return name
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// closeRun saves the console log, syncs and unmounts the media. It is
// called twice (once by the run, once deferred); the second does nothing.
func (a *Agent) closeRun(r *run) error {
	if p := recover(); p != nil { // deferred, during a panic: its stack goes in the run's log, then on up
		if _, logged := p.(loggedPanic); !logged {
			a.logPanic(p, debug.Stack())
			p = loggedPanic{p}
		}
		defer panic(p)
	}
	if r == nil || r.media == "" {
		return nil
	}
	errs := []error{a.runLog.Detach()}
	if r.j != nil {
		errs = append(errs, r.j.Close())
	}
	unix.Sync()
	if r.mediaDev == "" { // media that is a folder
		r.media = ""
		return errors.Join(errs...)
	}
	if err := unix.Unmount(r.media, 0); err != nil {
		errs = append(errs, fmt.Errorf("unmount the media: %w", err))
		unix.Unmount(r.media, unix.MNT_DETACH)
	}
	r.media = ""
	return errors.Join(errs...)
}

// mediaErr names an error of the media: full, read-only, or failing, and
// removed when its device is gone.
func (a *Agent) mediaErr(r *run, err error) error {
	if err == nil {
		return nil
	}
	err = media.Failure(err)
	if errors.Is(err, media.ErrIO) || errors.Is(err, unix.ENOENT) {
		return removed(r, err)
	}
	return err
}

// removed names err as the media's when its device is gone (a key pulled
// out), and returns it as it is otherwise.
func removed(r *run, err error) error {
	if r.mediaDev != "" && !exists("/sys/class/block/"+filepath.Base(r.mediaDev)) {
		return fmt.Errorf("%w: %s was removed: %w", media.ErrIO, r.mediaDev, err)
	}
	return err
}

// checkIndex checks the installed index with the product's recovery and,
// when it fails or recover mode asks, rebuilds it from the recordings.
func (a *Agent) checkIndex(r *run) (*recovery.Report, []recovery.File, []string, error) {
	ix, err := recovery.For(r.s.m.Product)
	if err != nil {
		if a.Config.Mode == config.ModeRecover {
			return nil, nil, nil, err
		}
		a.Log.Printf("index: %v; backed up as it is", err)
		return nil, nil, nil, nil
	}
	cerr := ix.Check(r.files)
	if cerr == nil && a.Config.Mode != config.ModeRecover {
		a.Log.Printf("index: %s passes its own check", strings.Join(r.s.m.Index, ", "))
		return nil, nil, nil, nil
	}
	if cerr != nil {
		a.Log.Printf("index: %v: rebuilding it from the recordings", cerr)
	}
	if err := r.j.Begin(steps.Recover, map[string]string{"reason": errString(cerr, "passeur.mode=recover")}); err != nil {
		return nil, nil, nil, a.mediaErr(r, err)
	}
	var vols []recovery.Volume
	for _, d := range r.s.roles.Disks {
		for _, v := range d.Volumes {
			if v.Mountpoint == "" {
				a.Log.Printf("index: %s (%s) has no mount point in the installed system: not scanned", v.Device, v.Spec)
				continue
			}
			files, err := r.s.reader.Files(v.Device, v.FSType)
			if err != nil {
				return nil, nil, nil, err
			}
			vols = append(vols, recovery.Volume{Device: v.Device, Mountpoint: v.Mountpoint, FS: files})
		}
	}
	files, rep, err := ix.Rebuild(vols)
	if err != nil {
		r.j.Fail(steps.Recover, err)
		return nil, nil, nil, err
	}
	switch {
	case errors.Is(cerr, recovery.ErrMissing):
		rep.Existing = "missing"
	case cerr != nil:
		rep.Existing = "corrupt: " + cerr.Error()
	default:
		rep.Existing = "equal"
		for _, f := range files {
			if old, err := fs.ReadFile(r.files, strings.TrimPrefix(f.Path, "/")); err != nil || !bytes.Equal(old, f.Data) {
				rep.Existing = "differs"
			}
		}
	}
	a.Log.Printf("index rebuilt: %d cameras, %d segments, %d bytes, %s to %s, %d files rejected, in %.2f s; existing index: %s",
		rep.Cameras, rep.Segments, rep.Bytes, rep.First.Format(time.RFC3339), rep.Last.Format(time.RFC3339), len(rep.Rejected), rep.Seconds, rep.Existing)
	for _, x := range rep.Rejected {
		a.Log.Printf("  not a recording: %s: %s", x.Path, x.Reason)
	}
	a.Events.Emit("recovery", rep)
	// What failed its check is kept in the backup as damaged, not
	// restored: the file the indexer names, else those it rebuilt.
	var damaged []string
	var corrupt *recovery.CorruptError
	if errors.As(cerr, &corrupt) {
		damaged = append(damaged, corrupt.Path)
	}
	if cerr != nil && !errors.Is(cerr, recovery.ErrMissing) {
		for _, f := range files {
			damaged = append(damaged, f.Path)
		}
	}
	return &rep, files, damaged, a.mediaErr(r, r.j.Complete(steps.Recover, rep))
}

func errString(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// storeBackup writes the backup's files, reusing those an interrupted run
// stored and journaled.
func (a *Agent) storeBackup(r *run, rebuilt []recovery.File, damaged []string) (any, error) {
	m := r.s.m
	paths := append(append(append([]string{}, m.Config...), m.Index...), "/etc/fstab")
	items, missing, err := backup.Collect(r.root, paths, backup.OriginSystem)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.Type == "symlink" && (filepath.IsAbs(it.Target) || strings.Contains("/"+it.Target+"/", "/../")) {
			a.Log.Printf("WARNING backup: %s is a link to %s: it is backed up, but a restore refuses a backup holding a link that may leave what it restores", it.Path, it.Target)
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range items {
		if slices.Contains(damaged, items[i].Path) {
			items[i].Origin = backup.OriginDamaged
		}
	}
	for _, f := range rebuilt {
		items = append(items, backup.Item{Entry: backup.Entry{Path: f.Path, Origin: backup.OriginRecovered, Type: "file",
			Mode: f.Mode, MTime: now, Size: int64(len(f.Data))}, Data: f.Data})
	}
	if r.s.plan != nil { // none when the release cannot migrate this system, or there is no release
		planJSON, err := json.MarshalIndent(r.s.plan, "", "  ")
		if err != nil {
			return nil, err
		}
		items = append(items, backup.Item{Entry: backup.Entry{Path: "/plan.json", Origin: backup.OriginPasseur, Type: "file",
			Mode: 0o644, MTime: now, Size: int64(len(planJSON))}, Data: planJSON})
	}

	previous := map[string]backup.Entry{}
	for _, rec := range r.j.Records {
		var e backup.Entry
		if rec.Step == steps.Backup && rec.State == "note" && json.Unmarshal(rec.Detail, &e) == nil {
			previous[e.Origin+" "+e.Path] = e
		}
	}
	bm, err := backup.Write(r.dir, backup.Manifest{
		Host: r.host, Machine: r.machine, MachineID: &r.id, Created: now, Product: r.s.sys.Product, Version: r.s.sys.Version,
		Source: r.s.sys.Source(), Missing: missing,
	}, items, backup.Options{
		Recipients: a.Config.AgeRecipients,
		Progress: &progress.Progress{Label: "backup", Out: a.Console, Event: func(p progress.Report) {
			a.Events.Emit("progress", p)
		}},
		Stored: func(e backup.Entry) error { return r.j.Note(steps.Backup, e) },
		Reuse: func(p, origin string) (backup.Entry, bool) {
			e, ok := previous[origin+" "+p]
			return e, ok
		},
	})
	if err != nil {
		return nil, err
	}
	var bytes int64
	for _, e := range bm.Entries {
		bytes += e.Size
	}
	return map[string]any{"entries": len(bm.Entries), "bytes": bytes, "missing": missing}, nil
}

// dropCaches empties the page cache so that the read-back reads the media.
func (a *Agent) dropCaches() error {
	if a.dropCache != nil {
		return a.dropCache()
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

// ErrNotRestorable refuses restore mode on an install it cannot write
// into.
var ErrNotRestorable = errors.New("restore mode cannot write into this install")

// restore puts the chosen backup of this host back into the installed
// system: verified first, the system's root mounted read-write only then.
func (a *Agent) restore(disks []inventory.Disk) error {
	s, err := a.prepare(disks)
	defer s.close(a)
	if err != nil {
		return err
	}
	if s.sys.State != "" {
		// Its root is read-only; what to put back where between root and
		// state is the release's to say, and no manifest says it yet.
		return fmt.Errorf("%w: %s %s keeps its files on its state %s laid over a read-only root: restore mode puts files back into a root only (a migration restores such an install's backup into the new system)",
			ErrNotRestorable, s.sys.Product, s.sys.Version, s.sys.State)
	}
	r, err := a.mountMedia(s)
	if err != nil {
		return err
	}
	defer a.closeRun(r)
	list, err := backup.List(r.media, r.host)
	if err != nil {
		return a.mediaErr(r, err)
	}
	ids, err := identities(r.media)
	if err != nil {
		return err
	}
	o := restoreOptions(s.m, r.id, ids)
	o.Progress.Out = a.Console
	o.Secret = r.secret
	b, err := backup.ChooseFor(list, a.Config.Backup, o)
	if err != nil {
		return err
	}
	r.dir = b.Dir
	// Checked whole before anything is written, the key included.
	if err := backup.Verify(r.dir, nil); err != nil {
		return err
	}
	plan, err := backup.Prepare(r.dir, o)
	if err != nil {
		return err
	}
	stamp := backup.Stamp(time.Now())
	if r.j, err = journal.Create(filepath.Join(r.dir, "restore-"+stamp+".jsonl"), r.header("restore")); err != nil {
		return a.mediaErr(r, err)
	}
	if err := a.attach(r, "restore-"+stamp+".log"); err != nil {
		return err
	}
	a.Log.Printf("restoring backup %s into %s", b.Name, s.sys.Root)
	var restored []backup.Entry
	if err := a.step(r, steps.Restore, func() (any, error) {
		if err := mountTarget(s, s.sys.Root); err != nil {
			return nil, err
		}
		restored, err = plan.Restore(targetMount)
		unix.Sync()
		if uerr := unix.Unmount(targetMount, 0); err == nil && uerr != nil {
			err = fmt.Errorf("unmount %s: %w", s.sys.Root, uerr)
		}
		return map[string]any{"backup": b.Name, "entries": len(restored)}, err
	}); err != nil {
		return err
	}
	r.j.Finish(map[string]string{"outcome": "restored", "backup": b.Name})
	var paths []string
	for _, e := range restored {
		paths = append(paths, e.Path)
	}
	if err := a.closeRun(r); err != nil {
		return a.mediaErr(r, err)
	}
	return a.Events.Emit("restore", map[string]any{"backup": b.Name, "root": s.sys.Root, "paths": paths})
}

// mountTarget mounts dev, a filesystem of the system disk, read-write.
func mountTarget(s *session, dev string) error {
	if err := s.reader.Release(dev); err != nil {
		return err
	}
	if err := os.MkdirAll(targetMount, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, targetMount, s.fsType(dev), unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount %s read-write: %w", dev, err)
	}
	return nil
}

// identities reads the age identities a technician put on the media to
// restore an encrypted backup (passeur/age-identities.txt), if any.
func identities(media string) ([]age.Identity, error) {
	f, err := os.Open(filepath.Join(media, "passeur", "age-identities.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return age.ParseIdentities(f)
}
