package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/preflight"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/steps"
)

// Errors of an install's choice of disks.
var (
	ErrNoBlankDisk = errors.New("no blank disk to install on")
	ErrWhichDisk   = errors.New("more than one blank disk could be the system disk")
	ErrNotBlank    = errors.New("passeur installs on, and formats, blank disks only")
	ErrInstalled   = errors.New("an install of the product is already here")
)

const (
	installHostName = "install" // the runs of installs: Backup/install/<stamp>
)

// install runs passeur.mode=install: the release written on a blank disk,
// the data disks the operator named (passeur.format-data=) formatted, the
// new system booted. Nothing else is written.
func (a *Agent) install(disks []inventory.Disk) error {
	if took, err := a.takeUp(disks); took || err != nil {
		return err
	}
	if err := a.obtain(disks); err != nil {
		return err
	}
	s, err := a.assign(disks)
	defer s.close(a)
	if err != nil {
		return err
	}
	if sys := s.roles.System(); sys != nil {
		return fmt.Errorf("%w: %s holds %s %s (passeur.mode=migrate keeps its data)", ErrInstalled, sys.Disk.Path, sys.Product, sys.Version)
	}
	target, format, err := a.installDisks(s.roles)
	if err != nil {
		return err
	}
	if s.pl, err = preflight.Layout(s.m, &roles.Assignment{Disk: *target}); err != nil {
		return err
	}
	sum := s.rel.SHA256
	fmt.Fprintf(a.Console, "PLAN: install %s %s onto %s (%s)\n", s.m.Product, s.m.Version, target.Path, identity.Name(*target))
	for _, e := range s.pl.Extents {
		fmt.Fprintf(a.Console, "  %-6s %-8s at %9s, %9s\n", e.Role, e.Name, inventory.HumanSize(e.Start), inventory.HumanSize(e.Bytes))
	}
	for _, d := range format {
		fmt.Fprintf(a.Console, "  format %s (%s) as a data disk\n", d.Path, identity.Name(d))
	}

	r := &run{s: s, host: installHostName, machine: identity.Name(*target)}
	if r.mediaDev, err = s.mediaDevice(); err != nil {
		return err
	}
	if err := s.reader.Release(r.mediaDev); err != nil {
		return err
	}
	if err := a.mountMediaDev(r); err != nil {
		return err
	}
	defer a.closeRun(r)
	stamp := backup.Stamp(time.Now())
	r.dir = filepath.Join(r.media, medialayout.BackupDir, r.host, stamp)
	for i := 2; exists(r.dir); i++ {
		r.dir = filepath.Join(r.media, medialayout.BackupDir, r.host, fmt.Sprintf("%s-%d", stamp, i))
	}
	if r.j, err = journal.Create(filepath.Join(r.dir, journal.File), r.header(string(config.ModeInstall))); err != nil {
		return a.mediaErr(r, err)
	}
	if err := a.attach(r, "console.log"); err != nil {
		return err
	}
	seed := filepath.Base(r.dir) + "\x00" + r.machine
	job, err := migrate.NewJob(string(config.ModeInstall), s.rel.Dir, sum, s.m, *target, s.pl, nil, seed)
	if err != nil {
		return err
	}
	for _, d := range format {
		job.AddDataDisk(s.m, d, seed)
	}
	a.Events.Emit("plan", job)
	if err := r.j.Complete(steps.Plan, job); err != nil {
		return a.mediaErr(r, err)
	}
	return a.writeJob(r, job, s.m, disks, s.reader)
}

// installDisks picks the install's target, the one blank disk not named to
// be formatted (or passeur.target=), and the data disks to format.
func (a *Agent) installDisks(r *roles.Result) (*inventory.Disk, []inventory.Disk, error) {
	var blank []*inventory.Disk
	var format []inventory.Disk
	found := map[string]bool{}
	for i := range r.Disks {
		d := &r.Disks[i].Disk
		if r.Disks[i].Role == roles.InstallMedia {
			continue
		}
		if identity.Named(*d, a.Config.FormatData) {
			found[d.Serial], found[d.WWID] = true, true
			if d.Content != inventory.Blank {
				return nil, nil, fmt.Errorf("%w: passeur.format-data names %s (%s), which holds %s", ErrNotBlank, d.Path, identity.Name(*d), d.Content)
			}
			format = append(format, *d)
			continue
		}
		if a.Config.Target != "" && !identity.Named(*d, []string{a.Config.Target}) {
			continue
		}
		if d.Content == inventory.Blank {
			blank = append(blank, d)
		} else if a.Config.Target != "" {
			return nil, nil, fmt.Errorf("%w: passeur.target names %s (%s), which holds %s", ErrNotBlank, d.Path, identity.Name(*d), d.Content)
		}
	}
	for _, id := range a.Config.FormatData {
		if !found[id] {
			return nil, nil, fmt.Errorf("passeur.format-data names %s: no such disk here", id)
		}
	}
	switch len(blank) {
	case 0:
		return nil, nil, ErrNoBlankDisk
	case 1:
		return blank[0], format, nil
	}
	var names []string
	for _, d := range blank {
		names = append(names, d.Path+" ("+identity.Name(*d)+")")
	}
	return nil, nil, fmt.Errorf("%w: %s; name it with passeur.target=<serial>", ErrWhichDisk, strings.Join(names, ", "))
}

// formatData formats the data disks of an install's job, each a step: a
// disk only blank, or already as this install formats it.
func (a *Agent) formatData(r *run, job *migrate.Job, disks []inventory.Disk) error {
	for i, t := range job.FormatData {
		v := job.Reattach[i] // job.Check proved one volume per disk
		id := t.Serial + t.WWID
		if err := a.step(r, steps.Format+id, func() (any, error) {
			d, err := t.Find(disks)
			if err != nil {
				return nil, err
			}
			if !formattable(*d, v) {
				return nil, fmt.Errorf("%w: %s (%s) holds %s; this install formats it only blank, or as the ext4 %s %q it made", ErrNotBlank, d.Path, identity.Name(*d), d.Content, v.UUID, v.Label)
			}
			f, err := migrate.OpenTarget(d.Path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			if err := migrate.FormatDisk(f, d.Size, v.Label, v.UUID); err != nil {
				return nil, err
			}
			a.Log.Printf("formatted %s (%s) as ext4 %s, label %s", d.Path, id, v.UUID, v.Label)
			return map[string]string{"disk": d.Path, "uuid": v.UUID, "label": v.Label}, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// formattable reports whether an install may format d as v: blank, or
// already the filesystem this install made there (taken up after a cut).
func formattable(d inventory.Disk, v roles.Volume) bool {
	return d.Content == inventory.Blank || d.FS != nil && d.FS.Type == "ext4" && d.FS.UUID == v.UUID && d.FS.Label == v.Label
}
