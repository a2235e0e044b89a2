// Package netboot makes a board's netboot bundle: the rescue kernel and
// initramfs, and an iPXE script that boots them over HTTP with the
// passeur.* keys of an unattended run (a lab installing from its
// repository), and serves a bundle and a repository for a lab bench
// (Server). The script is handed out by DHCP (as a TFTP file name, or an
// http:// URL for iPXE clients) or chained from iPXE.
package netboot

import (
	"errors"
	"fmt"
	"net/url"
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
	// Base, when set, is the HTTP URL of the folder serving the kernel and
	// initramfs ("http://10.0.2.100/"): for a script handed out by TFTP.
	// Empty, they are fetched relative to the script's own URL.
	Base string
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

// Script is the iPXE script: the kernel and initramfs fetched from Base,
// or relative to the script's own URL.
func (b Bundle) Script() (string, error) {
	line, err := b.Cmdline()
	if err != nil {
		return "", err
	}
	base := b.Base
	if base != "" {
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || strings.ContainsAny(base, " \t\n") {
			return "", fmt.Errorf("netboot base %q: want the http:// URL of the bundle's folder", base)
		}
		base = strings.TrimSuffix(base, "/") + "/"
	}
	return fmt.Sprintf("#!ipxe\n# passeur netboot bundle\necho passeur: fetching the rescue kernel and initramfs\nkernel %s%s initrd=%s %s\ninitrd %s%s\nboot\n",
		base, KernelFile, InitramfsFile, line, base, InitramfsFile), nil
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
