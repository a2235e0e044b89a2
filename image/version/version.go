// Package version parses and compares product versions as appliance vendors
// write them: dot-separated numbers of any length ("8", "7.14", "7.14.0.3"),
// optionally followed by a pre-release tag ("8.0.0-rc1", "8.0.0-rc.1"), and
// ranges of them (">=7.14.0.2 <8"). A version names folders (releases/
// <product>-<version> on a key), so what Parse accepts is a safe file name.
package version

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every error about a malformed version or range.
var ErrSyntax = errors.New("malformed version")

// Version is a parsed version. Missing trailing parts count as zero:
// 7.14 == 7.14.0 == 7.14.0.0.
type Version struct {
	Parts []uint64
	// Pre is the pre-release tag after the first '-': as in semver,
	// identifiers of [0-9A-Za-z-] separated by dots. It sorts before the
	// release.
	Pre string
	raw string
}

// Parse parses a version such as "7.14.0.3" or "8.0.0-rc1".
func Parse(s string) (Version, error) {
	v := Version{raw: s}
	num, pre, hasPre := strings.Cut(s, "-")
	if hasPre {
		if err := checkPre(pre); err != nil {
			return Version{}, fmt.Errorf("%w %q: pre-release tag %q: %w", ErrSyntax, s, pre, err)
		}
		v.Pre = pre
	}
	if num == "" {
		return Version{}, fmt.Errorf("%w %q: no number", ErrSyntax, s)
	}
	for _, p := range strings.Split(num, ".") {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("%w %q: part %q is not a number without leading zeros", ErrSyntax, s, p)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, fmt.Errorf("%w %q: part %q is not a number", ErrSyntax, s, p)
		}
		v.Parts = append(v.Parts, n)
	}
	return v, nil
}

// checkPre enforces semver's pre-release syntax: dot-separated identifiers,
// each non-empty, of [0-9A-Za-z-] only. Nothing else may reach a path: a
// tag "x/../../passeur" once made passeur key write over its own initramfs.
func checkPre(pre string) error {
	for _, id := range strings.Split(pre, ".") {
		if id == "" {
			return errors.New("an empty identifier")
		}
		for _, c := range id {
			if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-') {
				return fmt.Errorf("%q is not one of [0-9A-Za-z-]", c)
			}
		}
	}
	return nil
}

// MustParse is Parse for constants; it panics on error.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String returns the version as it was written.
func (v Version) String() string { return v.raw }

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer than w.
func (v Version) Compare(w Version) int {
	for i := 0; i < max(len(v.Parts), len(w.Parts)); i++ {
		a, b := part(v.Parts, i), part(w.Parts, i)
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.Pre == w.Pre:
		return 0
	case v.Pre == "": // a release is newer than its pre-releases
		return 1
	case w.Pre == "":
		return -1
	case v.Pre < w.Pre:
		return -1
	}
	return 1
}

func part(p []uint64, i int) uint64 {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// MarshalText writes the version as written.
func (v Version) MarshalText() ([]byte, error) { return []byte(v.raw), nil }

// UnmarshalText parses a version.
func (v *Version) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*v = p
	return nil
}
