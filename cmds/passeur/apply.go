package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/initramfs/staging"
)

// ErrNoHandOff: the next boot cannot be handed to the rescue.
var ErrNoHandOff = errors.New("the next boot cannot be handed to the staged rescue")

// handOff loads the rescue image staged beside the staging image (dir
// is the staging folder) for the next boot by kexec, with the command
// line that applies the staged release: the board's, then
// passeur.mode=migrate, passeur.staged= and, when the box reports, its
// fleet server. Each file is checked against the SHA-256 the repository
// signed (the record's) as it is read, and loaded from what was read.
func handOff(rec *staging.Record, dir string, c config.Config, load func(kernel, initrd *os.File, cmdline string) error) (string, error) {
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
	keys := []string{b.Kernel.Cmdline, "passeur.mode=migrate", "passeur.unattended=yes", "passeur.staged=" + rec.Param}
	if c.Report != "" && c.Box != "" && c.ReportToken != "" {
		keys = append(keys, "passeur.report="+c.Report, "passeur.box="+c.Box, "passeur.report-token="+c.ReportToken)
	}
	cmdline := strings.Join(keys, " ")
	if strings.ContainsAny(cmdline, "\"\n") {
		return "", fmt.Errorf("%w: a quote or a line break in the command line %q", ErrNoHandOff, cmdline)
	}
	if err := load(files[0], files[1], cmdline); err != nil {
		return "", fmt.Errorf("%w: kexec: %w", ErrNoHandOff, err)
	}
	return cmdline, nil
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
