// Package kmod selects a board's kernel modules from a Debian kernel's module
// tree: it reads each module's .modinfo, resolves dependencies, and writes the
// modules.dep the package does not ship, so that u-root's kmodule can load
// them with their dependencies at boot.
package kmod

import (
	"bytes"
	"debug/elf"
	"fmt"
	"strings"
)

// Info is what passeur needs from a module's .modinfo section.
type Info struct {
	Name    string   // the module's name, as modinfo "name=" says
	Depends []string // modules it needs loaded first, as "depends=" says
	// SoftPre are the names (module names or aliases) "softdep=pre:" asks
	// modprobe to load first: ext4 and libcrc32c need a crc32c provider at
	// init, which nothing else loads in an initramfs without modprobe.
	SoftPre []string
	Aliases []string // "alias=" names the module answers to
}

// ReadInfo reads the .modinfo section of the module file at path.
func ReadInfo(path string) (Info, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return Info{}, fmt.Errorf("read module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return Info{}, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	return ParseInfo(data), nil
}

// ParseInfo parses the contents of a .modinfo section: NUL-separated
// key=value strings.
func ParseInfo(data []byte) Info {
	var in Info
	for _, field := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			in.Name = v
		case "alias":
			in.Aliases = append(in.Aliases, v)
		case "softdep":
			in.SoftPre = append(in.SoftPre, softPre(v)...)
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					in.Depends = append(in.Depends, d)
				}
			}
		}
	}
	return in
}

// softPre returns the "pre:" names of a softdep value such as
// "pre: crc32c post: foo".
func softPre(v string) []string {
	var out []string
	pre := false
	for _, f := range strings.Fields(v) {
		switch f {
		case "pre:":
			pre = true
		case "post:":
			pre = false
		default:
			if pre {
				out = append(out, f)
			}
		}
	}
	return out
}

// Canonical is the form of a module name used for comparisons: the kernel
// treats '-' and '_' in module names as the same character.
func Canonical(name string) string {
	name = strings.TrimSuffix(name, ".ko")
	return strings.ReplaceAll(name, "-", "_")
}
