package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/passeur/passeur/initramfs/steps"
)

// RunsDir is the folder, in a staging folder, where passeur stage keeps
// the runs (backup, journal, log) of a staging image it removed once the
// new system reported healthy: Runs/HOST/RUN, as on a key.
const RunsDir = "runs"

// maxImages bounds the staging images settle looks at.
const maxImages = 16

// settleOptions are what settle needs.
type settleOptions struct {
	// system is the running system's root, where its version is read.
	system string
	// health is the running system's health report, as its vendor's
	// service wrote it (-health).
	health  []byte
	trusted []minisign.PublicKey
	// volumes lists the volumes the release may be staged on.
	volumes func(m *release.Manifest, want string) ([]staging.Volume, error)
	// report sends a report to the box's fleet server; nil when it has none.
	report func(wire.Report) error
	log    io.Writer
	now    func() time.Time
}

// settled is what settle did with the run of one staging area.
type settled struct {
	Image   string // the staging image
	Run     string // its folder in the image: Backup/HOST/RUN
	Version string
	OK      bool   // the health report's verdict
	Kept    string // where the run's backup and journal are kept, once the image is gone
	// Aside: the volume had no room to copy the run out of the image:
	// Kept is the whole image, kept aside, its journal at the boot step.
	Aside bool
}

// ErrNotOurs: a staging image that is not one this box's release declares.
var ErrNotOurs = errors.New("not a staging area of the release this box runs")

// settle ends, on the new system a staged migration booted, the run its
// rescue left open at the boot step: the outcome the rescue would record
// at its next boot, recorded from the running system, which has nobody to
// boot the rescue again. For every staging area on the box's volumes
// whose staged release is the one running, with its run booted and not
// finished: a healthy report keeps the run's backup and journal (the
// journal finished with the health report) under runs/ beside the image,
// reports done to the fleet server, then removes the image and the
// rescue; an unhealthy one is reported failed and the staging area stays
// as it is, for the rescue (passeur.staged=) to roll back or restore. A
// fleet server that cannot be reached leaves the area as it is: the next
// run reports.
func settle(o settleOptions) ([]settled, error) {
	ok, err := newsys.HealthOK(o.health)
	if err != nil {
		return nil, fmt.Errorf("the health report: %w", err)
	}
	imgs, err := stagingImages(o.volumes)
	if err != nil {
		return nil, err
	}
	var out []settled
	var errs []error
	for _, img := range imgs {
		s, err := settleOne(o, img, ok)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", img, err))
		}
		if s != nil {
			out = append(out, *s)
		}
	}
	return out, errors.Join(errs...)
}

// stagingImages finds the staging images on the box's mounted volumes: a
// staging image in a folder at the root of a volume any release could
// stage on (read-write, off the system's disks, with a UUID). Which
// release declares which area is checked on each, against its signed
// manifest.
func stagingImages(volumes func(m *release.Manifest, want string) ([]staging.Volume, error)) ([]string, error) {
	any := &release.Manifest{Staging: &release.Staging{Labels: []string{"*"}}}
	vols, err := volumes(any, "")
	if errors.Is(err, staging.ErrNoPlace) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vols {
		entries, err := os.ReadDir(v.Point)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			img := filepath.Join(v.Point, e.Name(), staging.ImageFile)
			if st, err := os.Lstat(img); err == nil && st.Mode().IsRegular() {
				if len(out) == maxImages {
					return nil, fmt.Errorf("more than %d staging images on the box's volumes", maxImages)
				}
				out = append(out, img)
			}
		}
	}
	return out, nil
}

// settleOne settles the staging image img: nil when it holds no run to
// settle.
func settleOne(o settleOptions, img string, ok bool) (*settled, error) {
	dir := filepath.Dir(img)
	if err := safeFolder(dir); err != nil {
		return nil, err
	}
	i, err := staging.OpenImage(img)
	if err != nil {
		return nil, err
	}
	defer i.Close()
	runs, err := i.Runs()
	if err != nil {
		return nil, err
	}
	var open []staging.Run
	for _, r := range runs {
		if r.Booted() && r.Header().Mode == "migrate" {
			open = append(open, r)
		}
	}
	switch {
	case len(open) == 0:
		return nil, nil // nothing booted yet, or all done: the rescue's
	case len(open) > 1:
		return nil, fmt.Errorf("%d runs booted a new system and are open: left to the rescue", len(open))
	}
	run := open[0]

	// The staged release, as signed, is the one running, and declares
	// this area.
	rec, err := i.Record()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(rec.Release, "releases/") || !iofs.ValidPath(rec.Release) {
		return nil, fmt.Errorf("its record names %q as the release", rec.Release)
	}
	staged, err := media.VerifyRelease(i, rec.Release, o.trusted)
	if err != nil {
		return nil, err
	}
	m := staged.Manifest
	if staged.SHA256 != rec.ManifestSHA256 {
		return nil, fmt.Errorf("the staged manifest is not the one recorded (SHA-256 %s, recorded %s)", staged.SHA256, rec.ManifestSHA256)
	}
	vols, err := o.volumes(m, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotOurs, err)
	}
	declared := false
	for _, v := range vols {
		declared = declared || v.Dir(m) == dir && v.Param(m) == rec.Param
	}
	if !declared {
		return nil, fmt.Errorf("%w: %s %s does not declare %s", ErrNotOurs, m.Product, m.Version, dir)
	}
	running, err := roles.VersionOf(os.DirFS(o.system), m)
	if err != nil {
		return nil, fmt.Errorf("the running system's version: %w", err)
	}
	s := &settled{Image: img, Run: run.Dir, Version: m.Version.String(), OK: ok}
	var said struct{ Product, Version string }
	json.Unmarshal(o.health, &said)
	if said.Product != "" && said.Product != m.Product || said.Version != "" && said.Version != s.Version {
		return nil, fmt.Errorf("the health report is %s %s's, not the staged %s %s's: left as it is", said.Product, said.Version, m.Product, s.Version)
	}
	if running != s.Version {
		return nil, fmt.Errorf("the box runs %s %s, not the staged %s: left to the rescue (passeur.staged=%s)", m.Product, running, s.Version, rec.Param)
	}
	if !ok {
		msg := fmt.Sprintf("%s %s failed its health check; the staging area keeps the release and the backup %s: the rescue with passeur.staged=%s rolls back or restores",
			m.Product, s.Version, run.Dir, rec.Param)
		fmt.Fprintln(o.log, msg)
		if o.report != nil {
			if err := o.report(wire.Report{Product: m.Product, Version: s.Version, State: wire.StateFailed, Step: steps.Health, Error: msg, Health: o.health}); err != nil {
				return s, fmt.Errorf("report: %w", err)
			}
		}
		return s, nil
	}

	// Healthy: the run's backup and journal move out of the image, the
	// journal is finished, the box reports, and the image goes. Under
	// dir, through a root: no link in it is followed out.
	host, name := path.Base(path.Dir(run.Dir)), path.Base(run.Dir) // plain names: Runs checks them
	root, err := os.OpenRoot(dir)
	if err != nil {
		return s, err
	}
	defer root.Close()
	kept := path.Join(RunsDir, host, name)
	keptAt := filepath.Join(dir, filepath.FromSlash(kept)) // s.Kept once it holds
	aside := ""                                            // the image's name kept aside, when no room
	if !finishedIn(root, kept) {
		part := path.Join(RunsDir, host, "."+name+".part")
		err := root.MkdirAll(path.Dir(part), 0o755)
		if err == nil {
			err = errors.Join(root.RemoveAll(part), root.RemoveAll(kept))
		}
		if err == nil {
			err = i.CopyOut(run.Dir, root, part, m.MinMediaFree+staging.Slack)
		}
		switch {
		case noRoom(err):
			// The volume filled up since the rescue ran (a recorder's
			// volume does): the whole image is kept aside, which needs no
			// room, and the box still reports and leaves the rescue.
			root.RemoveAll(part)
			now := time.Now
			if o.now != nil {
				now = o.now
			}
			aside = keptImageName(now(), func(name string) bool { _, err := root.Lstat(name); return err == nil })
		case err != nil:
			root.RemoveAll(part)
			return s, err
		default:
			if err := root.Rename(part, kept); err != nil {
				return s, err
			}
		}
		if o.report != nil {
			if err := o.report(wire.Report{Product: m.Product, Version: s.Version, State: wire.StateDone, Health: o.health}); err != nil {
				return s, fmt.Errorf("report: %w (the staging area stays until the box reports)", err)
			}
		}
		if aside == "" {
			if err := finishKept(root, kept, o.health); err != nil {
				return s, err
			}
		}
	}
	i.Close()
	var gone error
	if aside != "" {
		gone = root.Rename(staging.ImageFile, aside)
	} else {
		gone = root.Remove(staging.ImageFile)
	}
	if err := errors.Join(gone, root.RemoveAll(staging.RescueDir), removeMissing(root, HandOffsFile)); err != nil {
		return s, err
	}
	s.Kept = keptAt
	if aside != "" {
		s.Aside, s.Kept = true, filepath.Join(dir, aside)
	}
	return s, atomicfile.SyncDir(dir)
}

// finishKept finishes the journal of the run kept at rel under root with
// the new system's health report.
func finishKept(root *os.Root, rel string, health []byte) error {
	f, err := root.OpenFile(path.Join(rel, journal.File), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	j, err := journal.OpenFile(f)
	if err != nil {
		f.Close()
		return err
	}
	err = j.Finish(map[string]any{"outcome": "migrated: the new system reported healthy (recorded by passeur stage on it)", "ok": true, "health": json.RawMessage(health)})
	return errors.Join(err, j.Close())
}

// noRoom tells whether err is a volume without room (or over its quota).
func noRoom(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// keptImageName names a staging image kept aside at now, a name exists
// does not know: stage keeps there the image of finished runs it stages
// over, settle the image it had no room to copy a run out of (a box
// without a clock may give the same time twice). Nothing reads such an
// image again but a person.
func keptImageName(now time.Time, exists func(name string) bool) string {
	base := "media-" + now.UTC().Format("20060102T150405Z")
	name := base + ".fat"
	for n := 2; exists(name); n++ {
		name = fmt.Sprintf("%s-%d.fat", base, n)
	}
	return name
}

// removeMissing removes name from root, if it is there.
func removeMissing(root *os.Root, name string) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	return nil
}

// finishedIn tells whether the journal of the kept run at rel under root
// ends finished.
func finishedIn(root *os.Root, rel string) bool {
	f, err := root.Open(path.Join(rel, journal.File))
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, journal.MaxSize+1))
	if err != nil || len(data) > journal.MaxSize {
		return false
	}
	recs, _, err := journal.Parse(data)
	return err == nil && recs[len(recs)-1].State == journal.StateFinished
}

// readHealth reads the health report at p, bounded.
func readHealth(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, newsys.MaxHealth+1))
	if err == nil && len(data) > newsys.MaxHealth {
		err = fmt.Errorf("%s: larger than %d bytes", p, newsys.MaxHealth)
	}
	return bytes.TrimSpace(data), err
}
