// Package media reads what passeur finds on its install media (the USB
// key, or a FAT32 key prepared for it): the signed releases under
// releases/, each verified against the public keys the rescue image trusts
// before anything reads its manifest further.
package media

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
)

// Release is a verified release found on the media.
type Release struct {
	Dir      string // folder on the media, e.g. releases/camrec-8.0.0
	Manifest *release.Manifest
	KeyID    string // the trusted key that signed it
	// SHA256 is the hash of the manifest's bytes as verified: a job
	// names its release by it, and nothing re-reads the manifest after
	// its signature was checked.
	SHA256 string
}

// Refused is a release on the media that did not verify: it is named to
// the operator and never used.
type Refused struct {
	Dir string
	Err error
}

// ErrWrongArch refuses a release built for another architecture.
var ErrWrongArch = errors.New("release is for another architecture")

// ErrNoRelease is returned when the media holds no release that verifies.
var ErrNoRelease = errors.New("no valid release on the install media")

// LoadTrusted reads every *.pub minisign public key in dir.
func LoadTrusted(dir string) ([]minisign.PublicKey, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var keys []minisign.PublicKey
	for _, n := range names {
		k, err := sign.LoadPublicKey(n)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no trusted public key in %s: %w", dir, os.ErrNotExist)
	}
	return keys, nil
}

// Releases lists the releases under releases/ on the media: those whose
// manifest is signed by a trusted key and parses, and those refused.
func Releases(files fs.FS, trusted []minisign.PublicKey) ([]Release, []Refused) {
	ents, err := fs.ReadDir(files, medialayout.ReleasesDir)
	if err != nil {
		return nil, nil
	}
	var good []Release
	var bad []Refused
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := path.Join(medialayout.ReleasesDir, e.Name())
		r, err := VerifyRelease(files, dir, trusted)
		if err != nil {
			bad = append(bad, Refused{Dir: dir, Err: err})
			continue
		}
		good = append(good, r)
	}
	return good, bad
}

// MaxManifest bounds what is read of a manifest or its signature before
// the signature is checked.
const MaxManifest = 1 << 20

// ErrTooLarge refuses a manifest or signature larger than MaxManifest.
var ErrTooLarge = errors.New("larger than a manifest can be")

// Verify reads the manifest of the release in dir of files and checks its
// signature against the trusted keys, then parses and checks it.
func Verify(files fs.FS, dir string, trusted []minisign.PublicKey) (*release.Manifest, minisign.PublicKey, error) {
	r, key, err := verify(files, dir, trusted)
	return r.Manifest, key, err
}

// VerifyRelease is Verify, as a Release.
func VerifyRelease(files fs.FS, dir string, trusted []minisign.PublicKey) (Release, error) {
	r, _, err := verify(files, dir, trusted)
	return r, err
}

func verify(files fs.FS, dir string, trusted []minisign.PublicKey) (Release, minisign.PublicKey, error) {
	data, err := readBounded(files, path.Join(dir, "manifest.json"))
	if err != nil {
		return Release{}, minisign.PublicKey{}, err
	}
	sig, err := readBounded(files, path.Join(dir, "manifest.json"+sign.Ext))
	if err != nil {
		return Release{}, minisign.PublicKey{}, fmt.Errorf("%w: no signature: %w", sign.ErrBadSignature, err)
	}
	var verr error = sign.ErrBadSignature
	for _, k := range trusted {
		if _, verr = sign.Verify(k, data, sig); verr == nil {
			m, err := release.Parse(data)
			if err == nil && m.Arch != runtime.GOARCH {
				err = fmt.Errorf("%w: %s %s is for %s, this machine runs %s", ErrWrongArch, m.Product, m.Version, m.Arch, runtime.GOARCH)
			}
			sum := sha256.Sum256(data)
			return Release{Dir: dir, Manifest: m, KeyID: fmt.Sprintf("%X", k.ID()), SHA256: hex.EncodeToString(sum[:])}, k, err
		}
	}
	return Release{}, minisign.PublicKey{}, verr
}

// readBounded reads name whole, refusing more than MaxManifest bytes.
func readBounded(files fs.FS, name string) ([]byte, error) {
	f, err := files.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifest+1))
	if err == nil && len(data) > MaxManifest {
		err = fmt.Errorf("%s: %w (%d bytes at most)", name, ErrTooLarge, MaxManifest)
	}
	return data, err
}

// Newest returns the newest release of product among rels, or of any
// product when product is empty and all are of one product.
func Newest(rels []Release, product string) (*Release, error) {
	var best *Release
	for i, r := range rels {
		if product != "" && r.Manifest.Product != product {
			continue
		}
		if best != nil && product == "" && best.Manifest.Product != r.Manifest.Product {
			return nil, fmt.Errorf("the media holds releases of %s and %s: say which with passeur.release=", best.Manifest.Product, r.Manifest.Product)
		}
		if best == nil || r.Manifest.Version.Compare(best.Manifest.Version) > 0 {
			best = &rels[i]
		}
	}
	if best == nil {
		return nil, ErrNoRelease
	}
	return best, nil
}
