// Package netboot makes a board's netboot bundle: the rescue kernel and
// initramfs, and an iPXE script that boots them over HTTP with the
// passeur.* keys of an unattended run (a lab installing from its
// repository). Serve the bundle's folder over HTTP and chain the script
// from DHCP (iPXE's "chain http://server/boot.ipxe").
package netboot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/passeur/passeur/initramfs/atomicfile"
	"github.com/passeur/passeur/initramfs/config"
)

// Bundle is what a netboot bundle holds.
type Bundle struct {
	Kernel, Initramfs string // host files
	BoardCmdline      string // the board's kernel command line
	// Keys are passeur keys without the prefix: {"mode": "install",
	// "repo": "http://…", "unattended": "yes"}.
	Keys map[string]string
}

// Names of the bundle's files.
const (
	KernelFile    = "vmlinuz"
	InitramfsFile = "initramfs.cpio.zst"
	ScriptFile    = "boot.ipxe"
)

// Cmdline is the kernel command line the script boots with: the board's,
// then the passeur keys, sorted. Keys are checked as the agent will read
// them.
func (b Bundle) Cmdline() (string, error) {
	names := make([]string, 0, len(b.Keys))
	for k := range b.Keys {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := []string{strings.TrimSpace(b.BoardCmdline)}
	for _, k := range names {
		v := b.Keys[k]
		if strings.ContainsAny(v, " \t\n\"") {
			return "", fmt.Errorf("passeur.%s=%q: a value of the kernel command line cannot hold spaces or quotes", k, v)
		}
		parts = append(parts, config.Namespace+k+"="+v)
	}
	line := strings.Join(parts, " ")
	if _, errs := config.FromCmdline(line); len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return strings.TrimSpace(line), nil
}

// Script is the iPXE script: the kernel and initramfs fetched relative to
// the script's own URL.
func (b Bundle) Script() (string, error) {
	line, err := b.Cmdline()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("#!ipxe\n# passeur netboot bundle\necho passeur: fetching the rescue kernel and initramfs\nkernel %s initrd=%s %s\ninitrd %s\nboot\n",
		KernelFile, InitramfsFile, line, InitramfsFile), nil
}

// Write puts the bundle in dir: the kernel, the initramfs and the script.
func Write(dir string, b Bundle) error {
	script, err := b.Script()
	if err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct{ from, to string }{{b.Kernel, KernelFile}, {b.Initramfs, InitramfsFile}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, f.to), data, 0o644); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, ScriptFile), []byte(script), 0o644)
}
