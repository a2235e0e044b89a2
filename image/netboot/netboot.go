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

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/config"
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

// ErrUnsafeChar refuses a byte the script cannot carry: iPXE ends a
// command at \r, \v and \f as well as \n, and reads ;, ||, &&, #, $ and
// quotes as its own syntax, so a value holding one would run commands of
// its choosing before the kernel boots.
var ErrUnsafeChar = errors.New("character not allowed in the netboot script")

// Safe is every byte a word of the script may hold: letters, digits and
// the punctuation of URLs (without query or fragment), disk identities
// and comma lists. Anything else is refused, not escaped: iPXE has no
// escaping a kernel command line would survive unchanged.
const Safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:/=,+@%[]"

// checkSafe refuses a word of the script holding a byte outside Safe.
func checkSafe(what, word string) error {
	for i := 0; i < len(word); i++ {
		if !strings.ContainsRune(Safe, rune(word[i])) {
			return fmt.Errorf("%w: %s %q holds %q (allowed: %s)", ErrUnsafeChar, what, word, word[i], Safe)
		}
	}
	return nil
}

// Cmdline is the kernel command line the script boots with: the board's,
// then the passeur keys, sorted. Every word holds only Safe bytes, and
// keys are checked as the agent will read them.
func (b Bundle) Cmdline() (string, error) {
	names := make([]string, 0, len(b.Keys))
	for k := range b.Keys {
		names = append(names, k)
	}
	sort.Strings(names)
	board := strings.TrimSpace(b.BoardCmdline)
	for _, w := range strings.Split(board, " ") {
		if err := checkSafe("the board's kernel command line word", w); err != nil {
			return "", err
		}
	}
	parts := []string{board}
	for _, k := range names {
		v := b.Keys[k]
		if err := checkSafe("key", k); err != nil {
			return "", err
		}
		if err := checkSafe("passeur."+k+" value", v); err != nil {
			return "", err
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
		if err := checkSafe("netboot base", base); err != nil {
			return "", err
		}
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
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
