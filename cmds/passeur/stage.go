package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repoclient"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/mountinfo"
	"github.com/passeur/passeur/initramfs/obtain"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/sys/unix"
)

const stageUsage = `usage: passeur stage -repo-root ROOT.json -trust KEY.pub[,KEY.pub] [-config FILE] [-repo URL] [-account NAME] [-release VERSION|TAG] [-volume MOUNTPOINT] [-system /] [-board BOARD [-apply reboot|poweroff] [-esp DIR]] [-health FILE]

Run on the box's own running system: reads the box's update configuration
(-config, the key's passeur/config.json format; flags win), decides what
the box should install exactly as the rescue would (the repository's TUF
metadata from ROOT.json, its tags, the account's default and rollout, the
barriers, the hops passed without a boot), and stages it where the release
says it may be: a folder on one of the box's data volumes, mounted
read-write, off the disk the system boots from (-volume picks one; the
default is the one with the most room). Room for the release and the
backup is checked before anything is written; the staging area is one
image file, its blocks reserved, laid out as a passeur key, into which the
release is brought, verified, with a record of what was staged. Nothing
else of the box is changed. The rescue applies it with passeur.staged=,
which stage prints. With -board, the board's rescue image comes too,
beside the image; -apply reboot then loads it for the next boot by kexec
(checked against the hashes the repository signed) and reboots through
systemd where systemd runs the box. -apply poweroff loads it the same
way, told to power off once the new system is written (passeur.then=
poweroff), for the box's shutdown path to start in place of its
power-off: an update applied at shutdown, the new system started at the
next power-on. Where the running kernel refuses kexec and -esp names the
box's ESP (mounted read-write, systemd-boot its loader), the rescue is
laid there with an entry, and systemd-boot's one-shot entry set to it:
the next boot only starts it (-apply poweroff: at the next power-on, and
it boots the new system). With -apply poweroff and -esp, the rescue
loaded by kexec is also laid on the ESP, the one-shot entry set to it
first: a power cut during the update starts it again at the next
power-on.

With -health (the running system's health report), stage first settles
the staged run this system is the outcome of, which nobody boots the
rescue again to record: healthy, the run's backup and journal are kept
under runs/ in the staging folder, the fleet server hears "done" with
the report, and the staging image and rescue are removed; unhealthy, it
hears "failed" and the staging area stays for the rescue to roll back or
restore. A box already running what it should prints "nothing to stage".`

// ErrNoRoom: the staging area cannot hold the release and the backup.
var ErrNoRoom = errors.New("the staging area has no room for the release and the backup")

// ErrNoRescue: the repository publishes no rescue image for the box's board.
var ErrNoRescue = errors.New("the repository publishes no rescue image for this board (passeur repo rescue)")

// ErrRunStaged: the staging area holds a run's backup, which staging again
// would lose.
var ErrRunStaged = errors.New("the staging area holds a run's backup: apply it, or remove the staging area, before staging again")

// stageOptions are what stage needs, the flags read.
type stageOptions struct {
	system, volume string
	// apply tells that the staged release is to be handed to the rescue:
	// a release handed off maxHandOffs times already is refused.
	apply bool
	// board, when set, is the box's board: its rescue image is brought
	// beside the staging image, for the running system to boot into.
	board   string
	root    []byte
	trusted []minisign.PublicKey
	box     obtain.Box
	repo    string
	fetch   fetch.Options
	// work is where stage keeps what it reads before it writes (a
	// temporary folder is made in it).
	work string
	// volumes lists where the release may be staged (want: -volume).
	volumes func(m *release.Manifest, want string) ([]staging.Volume, error)
	// free is the bytes a volume can still take (statfs).
	free func(dir string) (int64, error)
	// identity is the box's identity for rollouts.
	identity func() string
	now      func() time.Time
}

func stageCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	volume := fs.String("volume", "", "the mount point of the data volume to stage on (default: the declared one with the most room)")
	rootFile := fs.String("repo-root", "", "the repository's trusted root (given with the box's enrolment)")
	trust := fs.String("trust", "", "the public keys releases are signed with, comma-separated minisign .pub files")
	cfgFile := fs.String("config", "", "the box's update configuration (repo, account, release), the key's passeur/config.json format")
	repoURL := fs.String("repo", "", "the repository or mirror URL (wins over -config)")
	account := fs.String("account", "", "the box's account (wins over -config)")
	rel := fs.String("release", "", "a version or tag (wins over -config)")
	system := fs.String("system", "/", "the running system's root, where its version is read")
	boardName := fs.String("board", "", "the box's board: its rescue image, from the repository, is brought beside the staging image")
	health := fs.String("health", "", "the running system's health report: a staged run this system is the outcome of is settled with it first\n(reported, its backup and journal kept under runs/, the staging image removed when healthy)")
	apply := fs.String("apply", "", "reboot: once staged, load the staged rescue for the next boot (kexec) and reboot through systemd when it runs the box;\nwithout systemd, the box's next kexec reboot starts it (needs -board);\npoweroff: load it to migrate then power off, for the box's shutdown path to start by kexec")
	esp := fs.String("esp", "", "the box's ESP, mounted read-write, whose loader is systemd-boot: where a kernel that refuses kexec has the rescue laid,\nwith systemd-boot's one-shot entry set to it (the next boot only; -apply poweroff then migrates at the next power-on);\nwith -apply poweroff and kexec, the one-shot entry is set to it first, for a power cut during the update")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := stageOptions{volume: *volume, system: *system, board: *boardName, apply: *apply != "", now: time.Now, free: statfsFree, volumes: runningVolumes,
		identity: func() string { return obtain.BoxIdentity(fixedDisks()) },
		fetch:    fetch.Options{Attempts: 6, Backoff: time.Second, Stall: 30 * time.Second, Log: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }}}
	var reportTo config.Config // passeur.report=, passeur.box=, passeur.report-token=
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
		reportTo = c
	}
	for _, f := range []struct{ flag, to *string }{{repoURL, &o.repo}, {account, &o.box.Account}, {rel, &o.box.Release}} {
		if *f.flag != "" {
			*f.to = *f.flag
		}
	}
	if *rootFile == "" || *trust == "" || o.repo == "" {
		return errors.New(stageUsage)
	}
	if *apply != "" && (*apply != "reboot" && *apply != "poweroff" || *boardName == "") {
		return fmt.Errorf("stage: -apply reboot or -apply poweroff, with -board, are the hand-offs built\n%s", stageUsage)
	}
	if *boardName != "" {
		if _, err := board.Load(*boardName); err != nil { // its command line is the hand-off's
			return err
		}
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
	send := reporter(ctx, reportTo)
	if *health != "" {
		data, err := readHealth(*health)
		if err != nil {
			return err
		}
		done, err := settle(settleOptions{system: o.system, health: data, trusted: o.trusted, volumes: o.volumes, report: send, log: stdout, now: o.now})
		for _, s := range done {
			switch {
			case s.Aside:
				fmt.Fprintf(stdout, "settled the staged run %s: %s reported healthy; no room on the volume to copy its backup and journal out, the whole staging image is kept as %s\n", s.Run, s.Version, s.Kept)
			case s.Kept != "":
				fmt.Fprintf(stdout, "settled the staged run %s: %s reported healthy; its backup and journal are kept in %s, the staging image is removed\n", s.Run, s.Version, s.Kept)
			}
		}
		if err != nil { // staging again may still be possible, elsewhere
			fmt.Fprintf(stderr, "settling a staged run: %v\n", err)
		}
	}
	if *apply != "" {
		// A rescue an earlier stage loaded is not the one this run hands
		// off to: nothing stays loaded while the staging area changes.
		kexecUnload()
		if *esp != "" {
			if err := entryUnload(*esp); err != nil {
				return fmt.Errorf("the rescue an earlier hand-off laid on %s: %w", *esp, err)
			}
		}
	}
	s, err := stage(ctx, o)
	pending := errors.Is(err, ErrRunStaged) && s != nil && *apply != ""
	switch {
	case errors.Is(err, obtain.ErrUpToDate):
		fmt.Fprintf(stdout, "nothing to stage: %v\n", err)
		return nil
	case pending:
		// Handed off before, and the rescue began its run: the box came
		// back to this system before the run ended (a power cut before
		// its first write, for one). The rescue takes the run up.
		fmt.Fprintf(stdout, "the staging area holds a run of %s %s to take up (%v): handing the next boot to the rescue again\n", s.Product, s.Version, err)
		return applyStaged(s, *apply, *esp, reportTo, stdout, stderr)
	case err != nil:
		return err
	}
	how := ""
	if len(s.Through) > 0 {
		how = " through " + strings.Join(s.Through, ", ")
	}
	if s.Version != s.Want {
		how += ", on the way to " + s.Want
	}
	fmt.Fprintf(stdout, "staged %s %s (%s) from %s%s in %s on %s (%s): %s, manifest SHA-256 %s\n", s.Product, s.Version, s.Why, cmp.Or(s.From, "nothing installed"), how,
		staging.ImageFile, s.Volume.Point, s.Volume.Dev, s.Release, s.ManifestSHA256)
	fmt.Fprintf(stdout, "the rescue applies it with: passeur.mode=migrate passeur.staged=%s\n", s.Param)
	if send != nil {
		if err := send(wire.Report{Product: s.Product, Version: s.Version, State: wire.StateStaged}); err != nil {
			// Staged all the same: the rescue reports the run's outcome.
			fmt.Fprintf(stderr, "report to %s: %v\n", reportTo.Report, err)
		} else {
			fmt.Fprintf(stdout, "reported %s %s staged to %s\n", s.Product, s.Version, reportTo.Report)
		}
	}
	if *apply != "" {
		return applyStaged(s, *apply, *esp, reportTo, stdout, stderr)
	}
	return nil
}

// applyStaged hands the box's next boot to the rescue staged with s
// (apply: reboot, or poweroff for the box's shutdown path): by kexec, or,
// where the running kernel refuses kexec and esp names the box's ESP
// (systemd-boot's), by a one-shot entry on it.
func applyStaged(s *staging.Record, apply, esp string, reportTo config.Config, stdout, stderr io.Writer) error {
	then := config.ThenBoot
	if apply == "poweroff" {
		then = config.ThenPoweroff
	}
	_, folder, _ := strings.Cut(s.Param, "/")
	dir := filepath.Join(s.Volume.Point, folder)
	unload, how := kexecUnload, "kexec"
	cmdline, err := handOff(s, dir, reportTo, then, kexecLoad)
	if err != nil && kexecRefused(err) && esp != "" {
		fmt.Fprintf(stdout, "the running kernel refuses kexec (%v): the rescue goes on the ESP %s, systemd-boot's one-shot entry set to it\n", err, esp)
		// Started by the firmware, the rescue cannot stand in for a
		// power-off already under way: it runs at the next power-on,
		// and boots the new system.
		unload, how = func() error { return entryUnload(esp) }, "systemd-boot's one-shot entry"
		cmdline, err = handOff(s, dir, reportTo, config.ThenBoot, entryLoad(esp))
		if err == nil && apply == "poweroff" {
			apply = "next power-on"
		}
	}
	if err != nil {
		unload()
		return err
	}
	// At shutdown, with the box's ESP: the rescue is also laid there,
	// systemd-boot's one-shot entry set to it, before the kexec'd one
	// runs: a power cut during the update starts it again at the next
	// power-on (and it then boots the new system), not the old system.
	firstOneShot := false
	if apply == "poweroff" && how == "kexec" && esp != "" {
		if _, err := handOff(s, dir, reportTo, config.ThenBoot, entryLoad(esp)); err != nil {
			entryUnload(esp)
			fmt.Fprintf(stderr, "no one-shot entry to the rescue on %s (%v): a power cut during the update starts the old system, the update still staged\n", esp, err)
		} else {
			firstOneShot = true
			unload = func() error { return errors.Join(kexecUnload(), entryUnload(esp)) }
		}
	}
	if err := countHandOff(dir, s.Product+"-"+s.Version); err != nil {
		unload()
		return err
	}
	fmt.Fprintf(stdout, "the rescue is loaded for the next boot (%s): %s\n", how, redact(cmdline))
	switch apply {
	case "poweroff":
		fmt.Fprintln(stdout, "the box's shutdown path starts it in place of the power-off (kexec): it migrates, then powers off")
		if firstOneShot {
			fmt.Fprintf(stdout, "systemd-boot's one-shot entry is set to the rescue on %s first: a power cut during the update starts it again at the next power-on\n", esp)
		}
		return nil
	case "next power-on":
		fmt.Fprintln(stdout, "the box powers off as asked; the rescue migrates at the next power-on, then boots the new system")
		return nil
	}
	restart := "kexec"
	if how != "kexec" {
		restart = "reboot"
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		fmt.Fprintf(stdout, "rebooting into it: systemctl %s\n", restart)
		cmd := exec.Command("systemctl", restart)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			unload() // no migration starts at a later reboot nobody chose
			return fmt.Errorf("%w: systemctl %s: %w", ErrNoHandOff, restart, err)
		}
		return nil
	}
	fmt.Fprintf(stdout, "the box's next %s starts it (systemctl %s, or the appliance's own)\n", restart, restart)
	return nil
}

// reporter sends reports to the fleet server of the box's configuration c
// (passeur.report=, passeur.box=, passeur.report-token=), stamped with
// the box and the time; nil when c names none.
func reporter(ctx context.Context, c config.Config) func(wire.Report) error {
	if !c.Reports() {
		return nil
	}
	return func(r wire.Report) error {
		r.Box, r.At = c.Box, time.Now().UTC()
		return wire.Send(ctx, c.Report, c.ReportToken, r)
	}
}

// stage decides, checks the staging area has room, then makes it and
// brings the release; the record is written last. What it reads before
// (the repository's metadata, the manifest) stays in a temporary folder:
// a refusal writes nothing on the volume.
func stage(ctx context.Context, o stageOptions) (*staging.Record, error) {
	work, err := os.MkdirTemp(o.work, "passeur-stage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	state := filepath.Join(work, "repository")
	c, err := repoclient.Open(ctx, repoclient.Options{URL: o.repo, Root: o.root, State: state, Fetch: o.fetch, Now: o.now})
	if err != nil {
		return nil, err
	}
	o.box.Identity = o.identity()
	var installedErr error
	route, err := obtain.Resolve(ctx, c, o.box, obtain.Options{Repo: o.repo, State: filepath.Join(work, "resolve"), Trusted: o.trusted, Fetch: o.fetch,
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
	// The release this session writes, where it may go, and room for it
	// and the backup.
	m, err := obtain.FetchManifest(ctx, c, route.Product, route.Next, filepath.Join(work, "next"), o.trusted, o.fetch)
	if err != nil {
		return nil, err
	}
	vols, err := o.volumes(m, o.volume)
	if err != nil {
		return nil, err
	}
	// The volume with the most room, unless one holds a staging image
	// already: its runs are not left behind on another.
	var vol staging.Volume
	var free int64 = -1
	held := false
	for _, v := range vols {
		f, err := o.free(v.Point)
		if err != nil {
			return nil, err
		}
		_, err = os.Lstat(filepath.Join(v.Dir(m), staging.ImageFile))
		if has := err == nil; has && !held || has == held && f > free {
			vol, free, held = v, f, has
		}
	}
	var stored int64
	for _, a := range m.Artifacts {
		stored += a.StoredSize
	}
	size := staging.Size(m, stored)
	dir := vol.Dir(m)
	img := filepath.Join(dir, staging.ImageFile)
	incoming := filepath.Join(dir, staging.IncomingDir)
	rel := path.Join(medialayout.ReleasesDir, route.Product+"-"+route.Next)
	if size > staging.MaxImage {
		return nil, fmt.Errorf("%w: the release needs a staging image of %s, more than the %s one may be", ErrNoRoom,
			inventory.HumanSize(size), inventory.HumanSize(staging.MaxImage))
	}
	// Whoever may write the volume's root must not steer what root writes
	// through the staging folder: a real folder, root's, written by no
	// one else; what is in it then is root's.
	if err := safeFolder(dir); err != nil {
		return nil, err
	}
	if n := handOffs(dir, route.Product+"-"+route.Next); o.apply && n >= maxHandOffs {
		return nil, fmt.Errorf("%w: %s %s was handed to the rescue %d times and did not go through: see the journal and log in %s",
			ErrHandedOff, route.Product, route.Next, n, dir)
	}
	// The release is brought into a folder beside the image, then the
	// image is made of it: the volume holds it twice for a while, and the
	// image of an earlier staging too while the new one is made.
	var missing, reclaim int64
	var keep string // an earlier image whose runs are over, kept aside
	drop := false   // an earlier image with no run: nothing in it to keep
	for _, a := range m.Artifacts {
		if a.VerifyStored(os.DirFS(incoming), rel) != nil {
			missing += a.StoredSize
		}
	}
	// The board's rescue image, beside the image: the running system
	// boots it, the rescue does not need it.
	rescueDir := filepath.Join(dir, staging.RescueDir)
	var rescue []*metadata.TargetFiles
	if o.board != "" {
		for _, name := range repo.RescueFiles {
			tf, err := c.Target(repo.RescueTarget(o.board, name))
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrNoRescue, o.board, err)
			}
			if tf.Length > repo.MaxRescueBytes {
				return nil, fmt.Errorf("%w: %s is %d bytes", ErrNoRescue, tf.Path, tf.Length)
			}
			rescue = append(rescue, tf)
			if repoclient.Verify(tf, filepath.Join(rescueDir, name)) != nil {
				missing += tf.Length
			}
		}
	}
	if st, err := os.Lstat(img); err == nil {
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s", staging.ErrBadImage, img)
		}
		done, open, err := staging.Runs(img)
		if err != nil {
			return nil, err
		}
		if open > 0 { // its record, for the rescue to be handed the run again
			var hashes *staging.Rescue
			if len(rescue) > 0 {
				hashes = &staging.Rescue{Board: o.board, SHA256: map[string]string{}}
				for _, tf := range rescue {
					name := path.Base(tf.Path)
					hashes.SHA256[name] = hex.EncodeToString(tf.Hashes["sha256"])
					// Republished since: the one the repository signs now.
					if to := filepath.Join(rescueDir, name); repoclient.Verify(tf, to) != nil {
						if _, err := c.Download(ctx, tf.Path, to, o.fetch); err != nil {
							return nil, err
						}
					}
				}
			}
			rec := pendingRecord(img, vol, m, o.trusted, hashes)
			// Its release is the image's, which the route may have left
			// since: its own hand-offs are counted.
			if rec != nil && o.apply {
				if n := handOffs(dir, rec.Product+"-"+rec.Version); n >= maxHandOffs {
					return nil, fmt.Errorf("%w: %s %s was handed to the rescue %d times and did not go through: see the journal and log in %s",
						ErrHandedOff, rec.Product, rec.Version, n, dir)
				}
			}
			return rec, fmt.Errorf("%w: %s holds %d", ErrRunStaged, img, open)
		}
		if done > 0 { // the backups of its finished runs stay, beside
			keep = filepath.Join(dir, keptImageName(o.now(), func(name string) bool {
				_, err := os.Lstat(filepath.Join(dir, name))
				return err == nil
			}))
		} else { // staged, never applied (a power cut at the hand-off): it goes first
			drop, reclaim = true, st.Size()
		}
	}
	if need := missing + size; free+reclaim < need {
		return nil, fmt.Errorf("%w: %s needs %s more (the release's artifacts, brought then laid in the staging image of %s, which keeps %s for the backup), %s free",
			ErrNoRoom, dir, inventory.HumanSize(need), inventory.HumanSize(size), inventory.HumanSize(m.MinMediaFree), inventory.HumanSize(free))
	}

	// Checked: write.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, iofs.ErrExist) {
		return nil, err
	}
	if drop {
		if err := os.Remove(img); err != nil {
			return nil, err
		}
	}
	// What an interrupted stage left of another release goes.
	if old, err := os.ReadDir(filepath.Join(incoming, medialayout.ReleasesDir)); err == nil {
		for _, e := range old {
			if e.Name() != path.Base(rel) {
				if err := os.RemoveAll(filepath.Join(incoming, medialayout.ReleasesDir, e.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := copyFiles(state, filepath.Join(incoming, medialayout.RepoStateDir)); err != nil {
		return nil, err
	}
	if _, err := obtain.Bring(ctx, c, route.Product, route.Next, incoming, rel, o.trusted, o.fetch, nil); err != nil {
		return nil, err
	}
	staged, err := media.VerifyRelease(os.DirFS(incoming), rel, o.trusted)
	if err != nil {
		return nil, err
	}
	var rescued *staging.Rescue
	if len(rescue) > 0 {
		rescued = &staging.Rescue{Board: o.board, SHA256: map[string]string{}}
		if err := os.MkdirAll(rescueDir, 0o755); err != nil {
			return nil, err
		}
		for _, tf := range rescue {
			name := path.Base(tf.Path)
			if _, err := c.Download(ctx, tf.Path, filepath.Join(rescueDir, name), o.fetch); err != nil {
				return nil, err
			}
			rescued.SHA256[name] = hex.EncodeToString(tf.Hashes["sha256"])
		}
	}
	s := &staging.Record{Rescue: rescued, Format: 1, Product: route.Product, Version: route.Next, Release: rel, ManifestSHA256: staged.SHA256, From: route.From,
		Want: route.Want, Why: route.Why, Through: route.Through, Repo: o.repo, At: o.now().UTC().Format(time.RFC3339),
		Volume: vol, Param: vol.Param(m)}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(incoming, staging.StagedFile), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	if keep != "" {
		if err := os.Rename(img, keep); err != nil {
			return nil, err
		}
	}
	if err := staging.Make(img, size, incoming, o.now()); err != nil {
		return nil, err
	}
	return s, os.RemoveAll(incoming)
}

// HandOffsFile counts, in the staging folder, the hand-offs of the staged
// release: outside the image, which a run that stops before its journal
// leaves as it was, and which staging again replaces.
const HandOffsFile = "handoffs.json"

// ErrHandedOff: the release was handed to the rescue maxHandOffs times.
var ErrHandedOff = errors.New("the staged release was handed to the rescue too many times")

// handOffs is how many times release was handed off from the staging
// folder dir.
func handOffs(dir, release string) int {
	data, err := os.ReadFile(filepath.Join(dir, HandOffsFile))
	if err != nil || len(data) > 4<<10 {
		return 0
	}
	var c struct {
		Release string `json:"release"`
		Count   int    `json:"count"`
	}
	if json.Unmarshal(data, &c) != nil || c.Release != release {
		return 0
	}
	return c.Count
}

// countHandOff counts one more hand-off of release from dir.
func countHandOff(dir, release string) error {
	data, err := json.Marshal(map[string]any{"release": release, "count": handOffs(dir, release) + 1})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, HandOffsFile), append(data, '\n'), 0o644)
}

// maxHandOffs bounds how many times a staged release is handed to the
// rescue (counted in HandOffsFile, outside the image): a run that cannot
// go through does not take the box at every boot.
const maxHandOffs = 3

// pendingRecord is the record of the staging image img on vol, whose run
// is to be taken up by the rescue, checked: its release verified against
// the trusted keys and the hash it records, its area vol's, and the
// rescue's hashes those the repository signs now (rescue), never the
// image's. Nil when any of that fails, when a run failed a step or booted
// the new system (its outcome is settle's, and an unhealthy one the
// operator's). How often it was handed off is HandOffsFile's to bound.
func pendingRecord(img string, vol staging.Volume, m *release.Manifest, trusted []minisign.PublicKey, rescue *staging.Rescue) *staging.Record {
	i, err := staging.OpenImage(img)
	if err != nil {
		return nil
	}
	defer i.Close()
	runs, err := i.Runs()
	if err != nil {
		return nil
	}
	for _, r := range runs {
		if r.Err != nil || r.Booted() {
			return nil
		}
		for _, rec := range r.Records {
			if rec.State == journal.StateFailed {
				return nil
			}
		}
	}
	rec, err := i.Record()
	if err != nil || rec.Param != vol.Param(m) || !strings.HasPrefix(rec.Release, medialayout.ReleasesDir+"/") || !iofs.ValidPath(rec.Release) {
		return nil
	}
	staged, err := media.VerifyRelease(i, rec.Release, trusted)
	if err != nil || staged.SHA256 != rec.ManifestSHA256 || staged.Manifest.Product != rec.Product || staged.Manifest.Version.String() != rec.Version {
		return nil
	}
	rec.Volume, rec.Rescue = vol, rescue
	return rec
}

// ErrUnsafeFolder refuses a staging folder that is not a plain folder of
// root's that only root writes.
var ErrUnsafeFolder = errors.New("the staging folder is a link, or not a folder written by root alone")

// safeFolder checks the staging folder dir, if there is one yet.
func safeFolder(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s (%s)", ErrUnsafeFolder, dir, st.Mode())
	}
	return nil
}

// copyFiles copies the regular files under from to the same places under
// to (the repository's memory: a few small files).
func copyFiles(from, to string) error {
	return filepath.WalkDir(from, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
}

// runningVolumes are the running system's volumes a release may be staged on.
func runningVolumes(m *release.Manifest, want string) ([]staging.Volume, error) {
	mounts, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	return staging.Volumes(m, mounts, staging.RunningDevice, want)
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
