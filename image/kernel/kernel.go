// Package kernel fetches a board's Debian kernel package into a cache and
// unpacks it: vmlinuz and the module tree the initramfs takes its modules
// from. It uses the host's apt (apt-cache, apt-get download, dpkg-deb).
package kernel

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Kernel is an unpacked kernel package.
type Kernel struct {
	Package string // versioned package name, e.g. linux-image-6.1.0-56-amd64
	Release string // uname -r of the kernel, e.g. 6.1.0-56-amd64
	Vmlinuz string // path of the kernel image
	Modules string // path of lib/modules/<release>
}

var dependsRe = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*)`)

// ResolveDepends extracts the versioned kernel package from apt-cache
// depends output for a metapackage such as linux-image-amd64; "" if the
// package is not a metapackage.
func ResolveDepends(aptCacheDepends string) string {
	m := dependsRe.FindStringSubmatch(aptCacheDepends)
	if m == nil {
		return ""
	}
	return m[1]
}

// Fetch makes sure the kernel package pkg (or the one the metapackage pkg
// depends on) is downloaded and unpacked under cache, and returns it. What is
// already in the cache is reused; when apt cannot be asked (no network), the
// last resolution of pkg is used.
func Fetch(pkg, cache string, log io.Writer) (*Kernel, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	resolved, err := resolve(pkg, cache)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, resolved)
	done := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(done); err != nil {
		deb, err := download(resolved, cache, log)
		if err != nil {
			return nil, err
		}
		os.RemoveAll(dir)
		if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("unpack %s: %v: %s", deb, err, out)
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, err
		}
	}
	return open(resolved, dir)
}

// resolve turns a metapackage into the versioned package it depends on.
func resolve(pkg, cache string) (string, error) {
	memo := filepath.Join(cache, pkg+".resolved")
	out, err := exec.Command("apt-cache", "depends", pkg).Output()
	if err == nil && strings.TrimSpace(string(out)) != "" {
		r := ResolveDepends(string(out))
		if r == "" {
			r = pkg
		}
		os.WriteFile(memo, []byte(r+"\n"), 0o644)
		return r, nil
	}
	if b, merr := os.ReadFile(memo); merr == nil {
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("resolve kernel package %s with apt-cache (run apt-get update?): %v", pkg, err)
}

// download fetches the .deb of pkg into cache unless it is there already.
func download(pkg, cache string, log io.Writer) (string, error) {
	if m, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb")); len(m) == 1 {
		return m[0], nil
	}
	fmt.Fprintf(log, "downloading %s\n", pkg)
	cmd := exec.Command("apt-get", "download", "-q", pkg)
	cmd.Dir = cache
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w", pkg, err)
	}
	m, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
	if len(m) != 1 {
		return "", fmt.Errorf("apt-get download %s: expected one .deb in %s, found %d", pkg, cache, len(m))
	}
	return m[0], nil
}

// open finds vmlinuz and the module tree in an unpacked package.
func open(pkg, dir string) (*Kernel, error) {
	mods, _ := filepath.Glob(filepath.Join(dir, "lib/modules/*"))
	if len(mods) != 1 {
		return nil, fmt.Errorf("kernel package %s: expected one lib/modules/<release>, found %d", pkg, len(mods))
	}
	rel := filepath.Base(mods[0])
	vmlinuz := filepath.Join(dir, "boot", "vmlinuz-"+rel)
	if _, err := os.Stat(vmlinuz); err != nil {
		return nil, fmt.Errorf("kernel package %s: %w", pkg, errors.Unwrap(err))
	}
	return &Kernel{Package: pkg, Release: rel, Vmlinuz: vmlinuz, Modules: mods[0]}, nil
}
