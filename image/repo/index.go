package repo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/passeur/passeur/image/release"
	"regexp"

	"github.com/passeur/passeur/image/version"
)

// Bounds of an index: a repository serves one product or a few, and its
// index is fetched whole before its signature is checked.
const (
	MaxIndexBytes = 1 << 20
	maxProducts   = 64
	maxVersions   = 4096
	maxTags       = 256
)

var tagRe = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

func parse(data []byte) (*Index, error) {
	var ix Index
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("repository index: %w", err)
	}
	if ix.Format != 1 {
		return nil, fmt.Errorf("repository index: format %d, this passeur reads 1", ix.Format)
	}
	if ix.Products == nil {
		ix.Products = map[string]*Product{}
	}
	if err := ix.check(); err != nil {
		return nil, fmt.Errorf("repository index: %w", err)
	}
	return &ix, nil
}

// check holds an index to what Publish and Tag write: names that are safe
// path elements, versions that parse, listed once each, oldest first,
// tags naming listed versions, and every list bounded.
func (ix *Index) check() error {
	if len(ix.Products) > maxProducts {
		return fmt.Errorf("%w: %d products, at most %d", ErrBadIndex, len(ix.Products), maxProducts)
	}
	for name, p := range ix.Products {
		if err := checkName(name); err != nil {
			return fmt.Errorf("%w: product %w", ErrBadIndex, err)
		}
		if p == nil {
			return fmt.Errorf("%w: product %q is null", ErrBadIndex, name)
		}
		if len(p.Versions) > maxVersions || len(p.Tags) > maxTags {
			return fmt.Errorf("%w: %s lists %d versions and %d tags, at most %d and %d", ErrBadIndex, name, len(p.Versions), len(p.Tags), maxVersions, maxTags)
		}
		var prev version.Version
		for i, s := range p.Versions {
			v, err := checkVersion(s)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrBadIndex, name, err)
			}
			if i > 0 && prev.Compare(v) >= 0 {
				return fmt.Errorf("%w: %s: version %s follows %s: want each once, oldest first", ErrBadIndex, name, s, prev)
			}
			prev = v
		}
		for tag, v := range p.Tags {
			if !tagRe.MatchString(tag) {
				return fmt.Errorf("%w: %s: %w %q", ErrBadIndex, name, ErrBadTagName, tag)
			}
			if !contains(p.Versions, v) {
				return fmt.Errorf("%w: %s: tag %s names %q, not a listed version", ErrBadIndex, name, tag, v)
			}
		}
	}
	return nil
}

// checkName refuses a product name or a version that is not a safe path
// element, as a release names them.
func checkName(s string) error { return release.CheckName("name", s) }

// checkVersion parses a version the repository lists, which is also the
// name of its folder.
func checkVersion(s string) (version.Version, error) {
	if err := checkName(s); err != nil {
		return version.Version{}, fmt.Errorf("version %w", err)
	}
	return version.Parse(s)
}
