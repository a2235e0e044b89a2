package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/staging"
)

// ErrNoHandOff: the next boot cannot be handed to the rescue.
var ErrNoHandOff = errors.New("the next boot cannot be handed to the staged rescue")

// handOff loads the rescue image staged beside the staging image (dir
// is the staging folder) for the next boot by kexec, with the command
// line that applies the staged release: the board's, then
// passeur.mode=migrate, passeur.staged= and, when the box reports, the
// network and its fleet server; then says what the rescue does once the
// new system is written (passeur.then=: boot, or poweroff for an update
// applied at shutdown). Each file is checked against the SHA-256 the repository
// signed (the record's) as it is read, and loaded from what was read.
func handOff(rec *staging.Record, dir string, c config.Config, then string, load func(kernel, initrd *os.File, cmdline string) error) (string, error) {
	if rec.Rescue == nil {
		return "", fmt.Errorf("%w: no rescue image was staged (passeur stage -board)", ErrNoHandOff)
	}
	b, err := board.Load(rec.Rescue.Board)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoHandOff, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, name := range repo.RescueFiles {
		f, err := verifiedCopy(root, staging.RescueDir+"/"+name, rec.Rescue.SHA256[name])
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrNoHandOff, err)
		}
		files = append(files, f)
	}
	if _, err := config.ParseStaged(rec.Param); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoHandOff, err)
	}
	keys := []string{"passeur.mode=migrate", "passeur.unattended=yes", "passeur.staged=" + rec.Param}
	if then != config.ThenBoot {
		keys = append(keys, "passeur.then="+then)
	}
	if c.Reports() {
		if u, err := url.Parse(c.Report); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%w: report URL %q", ErrNoHandOff, c.Report)
		}
		keys = append(keys, "passeur.net=dhcp", "passeur.report="+c.Report, "passeur.box="+c.Box, "passeur.report-token="+c.ReportToken)
	}
	// Each key one word of the command line: a value from the box's
	// configuration must not add one (a space, a quote, a control byte).
	for _, k := range keys {
		if i := strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' || r > 0x7e }); i >= 0 {
			return "", fmt.Errorf("%w: %q would not be one word of the kernel command line", ErrNoHandOff, redact(k))
		}
	}
	cmdline := strings.Join(append([]string{b.Kernel.Cmdline}, keys...), " ")
	if err := load(files[0], files[1], cmdline); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoHandOff, loadError{err})
	}
	return cmdline, nil
}

// redact hides the fleet server's token in a key or a command line.
func redact(s string) string {
	words := strings.Split(s, " ")
	for i, w := range words {
		if k, _, ok := strings.Cut(w, "="); ok && k == "passeur.report-token" {
			words[i] = k + "=…"
		}
	}
	return strings.Join(words, " ")
}

// verifiedCopy copies the file name of root (no link followed, at most
// repo.MaxRescueBytes) into an anonymous file in memory, and returns it
// if its SHA-256 is want: what is loaded is what was checked.
func verifiedCopy(root *os.Root, name, want string) (*os.File, error) {
	src, err := root.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if st, err := src.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	if len(want) != 2*sha256.Size {
		return nil, fmt.Errorf("%s: no SHA-256 recorded for it", name)
	}
	fd, err := unix.MemfdCreate("passeur-rescue", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(src, repo.MaxRescueBytes+1))
	if err == nil && n > repo.MaxRescueBytes {
		err = fmt.Errorf("%s: larger than %d bytes", name, repo.MaxRescueBytes)
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != want {
		err = fmt.Errorf("%s: SHA-256 %x, the repository signed %s", name, h.Sum(nil), want)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// kexecLoad loads kernel and initrd for the next kexec reboot.
func kexecLoad(kernel, initrd *os.File, cmdline string) error {
	return unix.KexecFileLoad(int(kernel.Fd()), int(initrd.Fd()), cmdline, 0)
}

// kexecUnload unloads what the next kexec reboot would start: a hand-off
// that did not go through leaves nothing to start a migration later.
func kexecUnload() error { return unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD) }

// entryLoad lays the rescue on the box's ESP, mounted read-write at esp,
// with a systemd-boot entry starting it with cmdline, and sets
// systemd-boot's one-shot entry to it (efivarfs): the next boot, and that
// one only, starts the rescue. It is the hand-off of a box whose running
// kernel refuses kexec. A power cut before the entry is set starts the
// old system, untouched; after, the rescue.
func entryLoad(esp string) func(kernel, initrd *os.File, cmdline string) error {
	return func(kernel, initrd *os.File, cmdline string) error {
		k, err := io.ReadAll(io.LimitReader(kernel, repo.MaxRescueBytes+1))
		if err != nil {
			return err
		}
		i, err := io.ReadAll(io.LimitReader(initrd, repo.MaxRescueBytes+1))
		if err != nil {
			return err
		}
		v, err := firmwareVars()
		if err != nil {
			return err
		}
		if err := newsys.AddRescue(esp, k, i, cmdline); err != nil {
			return err
		}
		if err := v.SetOneShot(newsys.RescueEntry); err != nil {
			return errors.Join(err, newsys.RemoveRescue(esp))
		}
		return nil
	}
}

// entryUnload takes a rescue an earlier hand-off (or a way back the
// rescue could not lift) laid off the ESP mounted at esp, and clears
// systemd-boot's one-shot and default entries where they name it.
func entryUnload(esp string) error {
	var err error
	if v, verr := firmwareVars(); verr == nil {
		err = v.ClearIf(newsys.RescueEntry, efivar.OneShot, efivar.Default)
	}
	return errors.Join(err, newsys.RemoveRescue(esp))
}

// firmwareVars are the UEFI variables of the running system, efivarfs
// mounted where systemd mounts it, if it is not yet.
var firmwareVars = func() (efivar.Vars, error) {
	v := efivar.Vars{Dir: efivar.Dir}
	if v.Available() == nil {
		return v, nil
	}
	if err := efivar.Mount(); err != nil {
		return v, err
	}
	return v, v.Available()
}

// loadError is the hand-off's load failing (kexec, or the entry), as
// opposed to what comes before it (the staged files, the command line).
type loadError struct{ err error }

func (e loadError) Error() string { return "load: " + e.err.Error() }
func (e loadError) Unwrap() error { return e.err }

// kexecRefused tells that the running kernel would not load the rescue
// for kexec: built without it (ENOSYS), or forbidden
// (kernel.kexec_load_disabled, lockdown: EPERM), or a signature it
// requires (KEXEC_SIG_FORCE: EKEYREJECTED, ENOKEY, EBADMSG).
func kexecRefused(err error) bool {
	var le loadError
	if !errors.As(err, &le) {
		return false
	}
	for _, e := range []error{unix.EPERM, unix.ENOSYS, unix.EKEYREJECTED, unix.ENOKEY, unix.EBADMSG} {
		if errors.Is(le.err, e) {
			return true
		}
	}
	return false
}
