package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/ownimage"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/initramfs/sysinit"
)

// The way back to the rescue: a staged rescue was started by kexec and
// lives in RAM; once it has begun writing the system disk, a power cut
// leaves the firmware nothing but a half-written disk. Right after the
// new ESP is written, the rescue lays itself on it (its kernel, checked
// against the one its image was built with, and its initramfs, written
// again from the files it runs from) with a systemd-boot entry, and makes
// it systemd-boot's default entry (LoaderEntryDefault, kept across boots,
// over loader.conf's): every power-on from then starts the rescue, which
// takes the run up from the staging area's journal, and takes itself off
// the ESP (the variable first) before it boots the new system. The ESP's
// own write stays a window: a cut there leaves the new ESP's own default,
// or no loader at all.

// wayBack is the done record of the way-back step.
type wayBack struct {
	Armed bool   `json:"armed"`
	Entry string `json:"entry,omitempty"`
	// Previous is the loader's default entry the box had set
	// (LoaderEntryDefault), put back when the way back is lifted.
	Previous string `json:"previous,omitempty"`
	Why      string `json:"why,omitempty"` // why not
}

// maxRescueFile bounds the rescue's kernel and initramfs as read.
const maxRescueFile = 256 << 20

// vars are the firmware's variables.
func (a *Agent) vars() efivar.Vars {
	if a.efivars != "" {
		return efivar.Vars{Dir: a.efivars}
	}
	if efivar.UEFI() && !efivar.Known() {
		// On demand (the board's modules_on_demand): loaded at every boot
		// it would fail those not started by UEFI.
		sysinit.LoadModules([]string{"efivarfs"}, nil, func(err error) { a.Log.Printf("way back to the rescue: %v", err) })
	}
	if err := efivar.Mount(); err != nil {
		a.Log.Printf("way back to the rescue: %v", err)
	}
	return efivar.Vars{Dir: efivar.Dir}
}

// armWayBack is the way-back step: it never fails the run, a box without
// it is where it was before (the rescue booted again by key or netboot).
// esp is the new ESP's extent, target the disk as the run found it: the
// firmware finds the new ESP through the table on the disk, the old one
// until the table step, which must hold an ESP where the new one is.
func (a *Agent) armWayBack(sys newsys.System, esp release.Extent, target *inventory.Disk) (any, error) {
	why := func(err error) (any, error) {
		a.Log.Printf("way back to the rescue: none (%v): a power cut before the new system boots needs the rescue started again by key or netboot with the same passeur.staged=", err)
		return wayBack{Why: err.Error()}, nil
	}
	if !espWhere(target, esp) {
		return why(fmt.Errorf("the disk's table holds no ESP at %d (%d bytes): the firmware would not find the new one before the table step", esp.Start, esp.Bytes))
	}
	v := a.vars()
	if err := v.Available(); err != nil {
		return why(err)
	}
	own := a.own
	if own == nil {
		own = a.prepareWayBack()
	}
	if own.err != nil {
		return why(own.err)
	}
	unmount, err := sys.MountESP(false)
	if err != nil {
		return why(err)
	}
	previous, err := layWayBack(v, sys.Path(newsys.ESPDir), own.kernel, own.initrd, entryCmdline(sysinit.Cmdline()))
	if uerr := unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		return why(err)
	}
	a.Log.Printf("way back to the rescue: on the new ESP (loader/entries/%s), systemd-boot's default entry: a power cut from here starts the rescue again", newsys.RescueEntry)
	return wayBack{Armed: true, Entry: newsys.RescueEntry, Previous: previous}, nil
}

// ownRescue is what the way back lays: the rescue's kernel and initramfs,
// or why there are none.
type ownRescue struct {
	kernel, initrd []byte
	err            error
}

// prepareWayBack makes, before the new ESP is written, what the way back
// lays right after: the window between the two is a copy, not a
// compression.
func (a *Agent) prepareWayBack() *ownRescue {
	k, i, err := a.ownImage()
	a.own = &ownRescue{kernel: k, initrd: i, err: err}
	return a.own
}

// layWayBack lays the rescue (kernel, initrd, started with cmdline) on
// the ESP mounted at esp and makes it systemd-boot's default entry; it
// returns the default entry the box had set, to be put back. What it
// laid or set is taken off again when it fails.
func layWayBack(v efivar.Vars, esp string, kernel, initrd []byte, cmdline string) (string, error) {
	previous, err := v.Entry(efivar.Default)
	if err != nil || previous == newsys.RescueEntry {
		previous = ""
	}
	if err := newsys.AddRescue(esp, kernel, initrd, cmdline); err != nil {
		return "", err
	}
	// The loader's default entry, kept across boots until the rescue
	// takes it off: every power-on before then starts the rescue.
	if err := v.SetEntry(efivar.Default, newsys.RescueEntry); err != nil {
		return "", errors.Join(err, restoreDefault(v, previous), newsys.RemoveRescue(esp))
	}
	return previous, nil
}

// liftWayBack makes the loader start the new system again (its one-shot
// entry cleared and its default put back as it was, where they name the
// rescue), and takes the rescue off the ESP mounted at esp, whatever
// became of the variables: an entry named by a variable but gone from
// the ESP is one systemd-boot passes over.
func liftWayBack(v efivar.Vars, esp, previous string) error {
	return errors.Join(v.ClearIf(newsys.RescueEntry, efivar.OneShot), restoreDefault(v, previous), newsys.RemoveRescue(esp))
}

// restoreDefault puts systemd-boot's default entry back to previous
// where it names the rescue ("" : none).
func restoreDefault(v efivar.Vars, previous string) error {
	if e, err := v.Entry(efivar.Default); err != nil || e != newsys.RescueEntry {
		return err
	}
	if previous == "" {
		return v.Clear(efivar.Default)
	}
	return v.SetEntry(efivar.Default, previous)
}

// forgetRescue clears those of systemd-boot's variables names
// (efivar.Default, efivar.OneShot) that name the rescue, on a box started
// by UEFI: before a rollback puts an old ESP back (which may hold the
// rescue a hand-off laid there: both), or as a staged run stops before
// writing (the one-shot only: a default a way back armed by an earlier
// boot guards a disk being written).
func (a *Agent) forgetRescue(names ...string) {
	if a.efivars == "" && !efivar.UEFI() {
		return
	}
	if err := a.vars().ClearIf(newsys.RescueEntry, names...); err != nil {
		a.Log.Printf("systemd-boot's entries naming the rescue not cleared: %v", err)
	}
}

// espWhere tells whether target's table holds an ESP where the extent e
// is, as large at least.
func espWhere(target *inventory.Disk, e release.Extent) bool {
	for _, p := range target.Partitions {
		if strings.EqualFold(p.PartType, release.TypeGUIDs["esp"]) && p.Start == e.Start && p.Size >= e.Bytes {
			return true
		}
	}
	return false
}

// rearmWayBack, at a take-up of a run that laid the rescue on the ESP,
// checks the loader's default entry still names it, and sets it again
// if not.
func (a *Agent) rearmWayBack(recs []journal.Record) {
	// Once the boot began, the way back was lifted (or is being).
	if _, ok := a.armed(recs); !ok || journal.Began(recs, steps.Boot) {
		return
	}
	v := a.vars()
	if e, err := v.Entry(efivar.Default); err == nil && e == newsys.RescueEntry {
		a.Log.Printf("way back to the rescue: still systemd-boot's default entry (%s)", newsys.RescueEntry)
		return
	}
	if err := v.SetEntry(efivar.Default, newsys.RescueEntry); err != nil {
		a.Log.Printf("way back to the rescue: systemd-boot's default entry not set again: %v", err)
		return
	}
	a.Log.Printf("way back to the rescue: systemd-boot's default entry set again (%s)", newsys.RescueEntry)
}

// armed is the run's way-back record, when its journal shows the rescue
// laid on the ESP.
func (a *Agent) armed(recs []journal.Record) (wayBack, bool) {
	var w wayBack
	if a.staged == nil {
		return w, false
	}
	done, ok := journal.DoneIn(recs, steps.WayBack)
	return w, ok && json.Unmarshal(done, &w) == nil && w.Armed
}

// disarmWayBack, before the new system boots, makes the loader start it
// again (the default and one-shot entries cleared where they name the
// rescue), then takes the rescue off the new ESP: a cut after this
// starts the new system. A rescue left there is never booted for the new
// system (newsys.LoadBootEntry), and the new system's passeur stage -esp
// takes it off.
func (a *Agent) disarmWayBack(recs []journal.Record, sys newsys.System) {
	w, ok := a.armed(recs)
	if !ok {
		return
	}
	var err error
	if unmount, merr := sys.MountESP(false); merr != nil {
		v := a.vars()
		err = errors.Join(v.ClearIf(newsys.RescueEntry, efivar.OneShot), restoreDefault(v, w.Previous), merr)
	} else {
		err = errors.Join(liftWayBack(a.vars(), sys.Path(newsys.ESPDir), w.Previous), unmount())
	}
	if err != nil {
		a.Log.Printf("way back to the rescue: not taken off the new ESP: %v", err)
		return
	}
	a.Log.Printf("way back to the rescue: taken off the new ESP")
}

// ownImage is the rescue's own kernel and initramfs: the kernel staged
// beside the staging image, taken only if it is the one this rescue image
// was built with (its SHA-256 is in the image); the initramfs written
// again from what this rescue runs from.
func (a *Agent) ownImage() (kernel, initrd []byte, err error) {
	want, err := os.ReadFile(filepath.Join(a.root(), medialayout.KernelSHA256)) // the image's own
	if err != nil {
		return nil, nil, fmt.Errorf("the rescue image names no kernel: %w", err)
	}
	if kernel, err = a.staged.ReadRescue("vmlinuz", maxRescueFile); err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(kernel)
	if got := hex.EncodeToString(sum[:]); got != string(bytes.TrimSpace(want)) {
		return nil, nil, fmt.Errorf("the staged kernel (SHA-256 %s) is not this rescue's (%s)", got, bytes.TrimSpace(want))
	}
	if initrd, err = a.ownInitramfs(); err != nil {
		return nil, nil, fmt.Errorf("the rescue's initramfs not written again: %w", err)
	}
	return kernel, initrd, nil
}

// ownInitramfs is the initramfs this rescue was started with, written
// again from the files it runs from (image/ownimage: the manifest its
// build baked in, each file's SHA-256 checked), zstd-compressed as the
// kernel takes it.
func (a *Agent) ownInitramfs() ([]byte, error) {
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(8<<20))
	if err != nil {
		return nil, err
	}
	if err := ownimage.Rebuild(a.root(), zw); err != nil {
		zw.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// entryCmdline is the command line the rescue laid on the ESP starts
// with: this one's, but the fleet server's keys: its token, which a vfat
// partition anybody may read would keep, and what is of no use without it.
// The rescue started from the ESP reports nothing; the new system reports
// the run's outcome.
func entryCmdline(cmdline string) string {
	var words []string
	for _, w := range config.SplitCmdline(cmdline) {
		k, _, _ := strings.Cut(strings.Trim(w, `"`), "=")
		switch k {
		case "passeur.report-token", "passeur.report", "passeur.box", "passeur.wayback":
			continue
		}
		if strings.ContainsAny(w, " \t") {
			w = `"` + strings.Trim(w, `"`) + `"`
		}
		words = append(words, w)
	}
	return strings.Join(append(words, "passeur.wayback=yes"), " ")
}
