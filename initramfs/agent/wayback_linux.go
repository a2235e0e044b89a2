package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/u-root/u-root/pkg/cpio"
)

// The way back to the rescue: a staged rescue was started by kexec and
// lives in RAM; once it has begun writing the system disk, a power cut
// leaves the firmware nothing but a half-written disk. Right after the
// new ESP is written, the rescue lays itself on it (its kernel, checked
// against the one its image was built with, and the initramfs
// staged beside the staging image, taken only when it unpacks to what the
// rescue runs from) with a systemd-boot entry, and sets
// systemd-boot's one-shot entry to it: the next power-on starts the
// rescue, which takes the run up from the staging area's journal, sets
// the one-shot again, and takes itself off the ESP before it boots the
// new system. The ESP's own write stays a window: a cut there leaves no
// loader at all.

// wayBack is the done record of the way-back step.
type wayBack struct {
	Armed bool   `json:"armed"`
	Entry string `json:"entry,omitempty"`
	Why   string `json:"why,omitempty"` // why not
}

// maxRescueFile bounds the rescue's kernel and initramfs as read.
const maxRescueFile = 256 << 20

// vars are the firmware's variables.
func (a *Agent) vars() efivar.Vars {
	if a.efivars != "" {
		return efivar.Vars{Dir: a.efivars}
	}
	if err := efivar.Mount(); err != nil {
		a.Log.Printf("way back to the rescue: %v", err)
	}
	return efivar.Vars{Dir: efivar.Dir}
}

// armWayBack is the way-back step: it never fails the run, a box without
// it is where it was before (the rescue booted again by key or netboot).
func (a *Agent) armWayBack(sys newsys.System) (any, error) {
	why := func(err error) (any, error) {
		a.Log.Printf("way back to the rescue: none (%v): a power cut before the new system boots needs the rescue started again by key or netboot with the same passeur.staged=", err)
		return wayBack{Why: err.Error()}, nil
	}
	v := a.vars()
	if err := v.Available(); err != nil {
		return why(err)
	}
	kernel, initrd, err := a.ownImage()
	if err != nil {
		return why(err)
	}
	cmdline, err := readBounded("/proc/cmdline", 4096)
	if err != nil {
		return why(err)
	}
	line := strings.TrimSpace(string(cmdline))
	unmount, err := sys.MountESP(false)
	if err != nil {
		return why(err)
	}
	err = newsys.AddRescue(sys.Path(newsys.ESPDir), kernel, initrd, line)
	if uerr := unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		return why(err)
	}
	if err := v.SetOneShot(newsys.RescueEntry); err != nil {
		return why(err)
	}
	a.Log.Printf("way back to the rescue: on the new ESP (loader/entries/%s), systemd-boot's one-shot entry set: a power cut from here starts the rescue again", newsys.RescueEntry)
	return wayBack{Armed: true, Entry: newsys.RescueEntry}, nil
}

// rearmWayBack sets the one-shot entry again at a take-up (systemd-boot
// cleared it as it started this rescue) when the run laid the rescue on
// the ESP and has not booted the new system yet.
func (a *Agent) rearmWayBack(recs []journal.Record) {
	if !a.armed(recs) {
		return
	}
	if err := a.vars().SetOneShot(newsys.RescueEntry); err != nil {
		a.Log.Printf("way back to the rescue: the one-shot entry not set again: %v", err)
		return
	}
	a.Log.Printf("way back to the rescue: one-shot entry set again (%s)", newsys.RescueEntry)
}

// armed tells whether the run's journal shows the rescue laid on the ESP.
func (a *Agent) armed(recs []journal.Record) bool {
	if a.staged == nil {
		return false
	}
	done, ok := journal.DoneIn(recs, steps.WayBack)
	var w wayBack
	return ok && json.Unmarshal(done, &w) == nil && w.Armed
}

// disarmWayBack takes the rescue off the new ESP and clears the one-shot
// entry, before the new system boots: a cut after this starts the new
// system, whose own passeur stage hands the run to the rescue again.
func (a *Agent) disarmWayBack(recs []journal.Record, sys newsys.System) {
	if !a.armed(recs) {
		return
	}
	err := a.vars().ClearOneShot()
	if unmount, merr := sys.MountESP(false); merr != nil {
		err = errors.Join(err, merr)
	} else {
		err = errors.Join(err, newsys.RemoveRescue(sys.Path(newsys.ESPDir)), unmount())
	}
	if err != nil {
		a.Log.Printf("way back to the rescue: not taken off the new ESP: %v", err)
		return
	}
	a.Log.Printf("way back to the rescue: taken off the new ESP")
}

// ownImage is the rescue's own kernel and initramfs: the kernel staged
// beside the staging image, taken only if it is the one this rescue image
// was built with (its SHA-256 is in the image); the initramfs staged
// beside it, taken only if it unpacks to what this rescue runs from.
func (a *Agent) ownImage() (kernel, initrd []byte, err error) {
	want, err := readBounded(filepath.Join(a.root(), medialayout.KernelSHA256), 128)
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
	if initrd, err = a.staged.ReadRescue("initramfs.cpio.zst", maxRescueFile); err != nil {
		return nil, nil, err
	}
	if err := sameAsRunning(initrd, a.root()); err != nil {
		return nil, nil, fmt.Errorf("the staged initramfs is not this rescue's: %w", err)
	}
	return kernel, initrd, nil
}

// rewritten are the image's files the rescue rewrites as it runs, which
// hold no code: not compared.
var rewritten = map[string]bool{"/etc/resolv.conf": true} // a DHCP lease's

// maxUnpacked bounds an initramfs as unpacked.
const maxUnpacked = 512 << 20

// sameAsRunning checks that the zstd-compressed cpio archive data unpacks
// to what this rescue runs from (under root): every regular file and link
// it holds is, byte for byte, the running one; folders and device nodes
// carry no code and are not compared. Nothing follows the archive's
// trailer but padding: the kernel would unpack an archive appended there.
func sameAsRunning(data []byte, root string) error {
	zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderMaxMemory(maxUnpacked))
	if err != nil {
		return err
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, maxUnpacked+1))
	if err != nil {
		return err
	}
	if len(raw) > maxUnpacked {
		return fmt.Errorf("more than %d bytes unpacked", maxUnpacked)
	}
	rr := cpio.Newc.Reader(bytes.NewReader(raw))
	end, files := int64(0), 0
	for {
		rec, err := rr.ReadRecord()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		end = rec.RecPos + int64(rec.RecLen)
		name := filepath.Clean("/" + rec.Name)
		p := filepath.Join(root, name)
		switch rec.Mode & cpio.S_IFMT {
		case cpio.S_IFREG:
			if rewritten[name] {
				continue
			}
			if rec.FileSize > maxRescueFile {
				return fmt.Errorf("%s: %d bytes", name, rec.FileSize)
			}
			want := make([]byte, rec.FileSize)
			if _, err := rec.ReadAt(want, 0); err != nil && err != io.EOF {
				return err
			}
			st, err := os.Lstat(p)
			if err != nil || !st.Mode().IsRegular() || st.Size() != int64(rec.FileSize) {
				return fmt.Errorf("%s differs from the running one (%v)", name, err)
			}
			got, err := readBounded(p, int64(rec.FileSize))
			if err != nil || !bytes.Equal(got, want) {
				return fmt.Errorf("%s differs from the running one (%v)", name, err)
			}
			files++
		case cpio.S_IFLNK:
			want := make([]byte, rec.FileSize)
			if _, err := rec.ReadAt(want, 0); err != nil && err != io.EOF {
				return err
			}
			if got, err := os.Readlink(p); err != nil || got != string(want) {
				return fmt.Errorf("%s links elsewhere than the running one (%v)", name, err)
			}
		}
	}
	// The trailer record (its header and name, padded), then zeros only.
	trailer := int64(110 + len("TRAILER!!!\x00"))
	trailer = (trailer + 3) &^ 3
	if end+trailer > int64(len(raw)) || !bytes.Contains(raw[end:end+trailer], []byte("TRAILER!!!")) {
		return errors.New("no trailer where the archive ends")
	}
	for _, b := range raw[end+trailer:] {
		if b != 0 {
			return errors.New("more follows the archive's trailer")
		}
	}
	if files == 0 {
		return errors.New("no file in it")
	}
	return nil
}

// readBounded reads the file at p, at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s: more than %d bytes", p, limit)
	}
	return data, err
}
