// Package repo is a release repository: static files any HTTP server (or a
// folder on the install media) can serve. Each release sits in
// <product>/<version>/ as built; index.json lists, per product, the
// versions and the tags ("stable", "test-…") naming one of them, and is
// signed like a manifest (index.json.minisig).
package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

// IndexFile is the repository's signed index.
const IndexFile = "index.json"

// Index lists what a repository holds.
type Index struct {
	Format   int                 `json:"format"`
	Products map[string]*Product `json:"products"`
}

// Product is one product's entry.
type Product struct {
	Versions []string          `json:"versions"` // sorted, oldest first
	Tags     map[string]string `json:"tags"`     // tag -> version
}

// Errors a caller may branch on.
var (
	ErrUnknown    = errors.New("not in the repository")
	ErrBadTagName = errors.New("bad tag name")
	ErrBadIndex   = errors.New("malformed repository index")
)

// Load reads and verifies a repository's index: nothing from an index whose
// signature fails is used.
func Load(dir string, pk minisign.PublicKey) (*Index, error) {
	data, err := sign.VerifyFile(pk, filepath.Join(dir, IndexFile))
	if err != nil {
		return nil, err
	}
	return parse(data)
}

// Verify checks an index fetched over the network against the trusted
// keys and parses it.
func Verify(data, sig []byte, trusted []minisign.PublicKey) (*Index, error) {
	if len(data) > MaxIndexBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadIndex, len(data), MaxIndexBytes)
	}
	err := sign.ErrBadSignature
	for _, k := range trusted {
		if _, err = sign.Verify(k, data, sig); err == nil {
			return parse(data)
		}
	}
	return nil, fmt.Errorf("repository index: %w", err)
}

// Resolve returns the version a tag or a version names for product.
func (ix *Index) Resolve(product, tagOrVersion string) (string, error) {
	p := ix.Products[product]
	if p == nil {
		return "", fmt.Errorf("product %q: %w", product, ErrUnknown)
	}
	if v, ok := p.Tags[tagOrVersion]; ok {
		return v, nil
	}
	for _, v := range p.Versions {
		if v == tagOrVersion {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s %q (neither a tag nor a version): %w", product, tagOrVersion, ErrUnknown)
}

// ReleaseDir is where a release of the repository lives.
func ReleaseDir(repoDir, product, version string) string {
	return filepath.Join(repoDir, product, version)
}

// loadForWrite reads the current index (verified) or starts an empty one.
func loadForWrite(dir string, sk minisign.PrivateKey) (*Index, error) {
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); errors.Is(err, os.ErrNotExist) {
		return &Index{Format: 1, Products: map[string]*Product{}}, nil
	}
	return Load(dir, sk.Public().(minisign.PublicKey))
}

// save writes and signs the index atomically, if it is one Load accepts.
func save(dir string, ix *Index, sk minisign.PrivateKey) error {
	if err := ix.check(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	sig := sign.Sign(sk, data, "passeur repository index")
	// Signature first: a reader never sees a new index with an old signature
	// for longer than the two renames.
	for _, f := range []struct {
		name string
		data []byte
	}{{IndexFile + sign.Ext, sig}, {IndexFile, data}} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Publish verifies the signed release in releaseDir with the key's public
// half, copies it into the repository, lists it in the index and points
// the given tags at it.
func Publish(dir, releaseDir string, sk minisign.PrivateKey, tags ...string) (*release.Manifest, error) {
	pk := sk.Public().(minisign.PublicKey)
	data, err := sign.VerifyFile(pk, filepath.Join(releaseDir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	m, err := release.Parse(data)
	if err != nil {
		return nil, err
	}
	if err := m.VerifyArtifacts(releaseDir); err != nil {
		return nil, err
	}
	for _, t := range tags {
		if !tagRe.MatchString(t) {
			return nil, fmt.Errorf("%w %q", ErrBadTagName, t)
		}
	}
	if err := checkName(m.Product); err != nil {
		return nil, fmt.Errorf("%w: product %w", ErrBadIndex, err)
	}
	if _, err := checkVersion(m.Version.String()); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadIndex, m.Product, err)
	}
	ix, err := loadForWrite(dir, sk)
	if err != nil {
		return nil, err
	}
	dst := ReleaseDir(dir, m.Product, m.Version.String())
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, err
	}
	files := []string{"manifest.json", "manifest.json" + sign.Ext}
	for _, a := range m.Artifacts {
		files = append(files, a.File)
	}
	for _, f := range files {
		if err := copyFile(filepath.Join(releaseDir, f), filepath.Join(dst, f)); err != nil {
			return nil, err
		}
	}
	p := ix.Products[m.Product]
	if p == nil {
		p = &Product{Tags: map[string]string{}}
		ix.Products[m.Product] = p
	}
	if !contains(p.Versions, m.Version.String()) {
		p.Versions = append(p.Versions, m.Version.String())
		sort.Slice(p.Versions, func(i, j int) bool {
			return version.MustParse(p.Versions[i]).Compare(version.MustParse(p.Versions[j])) < 0
		})
	}
	for _, t := range tags {
		p.Tags[t] = m.Version.String()
	}
	return m, save(dir, ix, sk)
}

// Tag points tag of product at a version the repository holds.
func Tag(dir, product, tag, ver string, sk minisign.PrivateKey) error {
	if !tagRe.MatchString(tag) {
		return fmt.Errorf("%w %q", ErrBadTagName, tag)
	}
	ix, err := loadForWrite(dir, sk)
	if err != nil {
		return err
	}
	p := ix.Products[product]
	if p == nil || !contains(p.Versions, ver) {
		return fmt.Errorf("%s %s: %w", product, ver, ErrUnknown)
	}
	p.Tags[tag] = ver
	return save(dir, ix, sk)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}
