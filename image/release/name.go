package release

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// ManifestFile is the manifest's name in a release's folder; its signature
// is ManifestFile+sign.Ext beside it.
const ManifestFile = "manifest.json"

// ErrUnsafeName refuses a name that is not one plain file name: products
// and versions name folders (releases/<product>-<version> on a key, the
// product's profile in the rescue image), artifacts name files beside the
// manifest. A version "8.0.0-x/../../../passeur" once made passeur key
// write an artifact over the key's own initramfs.
var ErrUnsafeName = errors.New("name outside the safe alphabet")

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName refuses a name that is not one safe path element: a letter or
// a digit, then up to 63 of [A-Za-z0-9._-] (never "." or "..", no
// separator, nothing a FAT long name or a shell would mind). Products and
// versions are named so wherever they name a folder: on a key, in a
// repository.
func CheckName(what, s string) error {
	if !safeName.MatchString(s) {
		return fmt.Errorf("%w: %s %q (a letter or digit, then up to 63 of [A-Za-z0-9._-])", ErrUnsafeName, what, s)
	}
	return nil
}

// checkFile refuses an artifact's file that is not a clean relative path of
// safe names, or that is the manifest or its signature.
func checkFile(where, f string) error {
	if f == "" || path.Clean(f) != f || path.IsAbs(f) {
		return fmt.Errorf("%w: %s: file %q must be a clean path inside the release", ErrUnsafeName, where, f)
	}
	for _, e := range strings.Split(f, "/") {
		if err := CheckName(where+": file", e); err != nil {
			return err
		}
	}
	if strings.HasPrefix(f, ManifestFile) {
		return fmt.Errorf("%w: %s: file %q would stand for the manifest or its signature", ErrUnsafeName, where, f)
	}
	return nil
}

// checkPaths refuses a path of the old system's root that is not absolute
// and clean.
func checkPaths(what string, ps ...string) error {
	for _, p := range ps {
		if !path.IsAbs(p) || path.Clean(p) != p {
			return fmt.Errorf("%w: %s path %q must be absolute and clean", ErrSyntax, what, p)
		}
	}
	return nil
}

// checkGlobs refuses a malformed glob, and, when absolute, one that is not
// clean.
func checkGlobs(what string, absolute bool, gs ...string) error {
	for _, g := range gs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("%w: %s %q: %w", ErrSyntax, what, g, err)
		}
		if absolute {
			if err := checkPaths(what, g); err != nil {
				return err
			}
		}
	}
	return nil
}
