package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/initramfs/media"
)

// Verify reads every stored file of the backup in dir back from the media
// and checks it against SHA256SUMS, and checks the manifest against them:
// each entry's pieces listed with their hashes and sizes, nothing listed
// that the manifest does not name, and, for plain backups, each file's
// content hash across its pieces. An encrypted manifest is checked only
// against its hash here: its entries are checked by Prepare, which has
// the identity to decrypt it. drop, when set, is called first to empty
// the page cache so that the media itself is read. The error wraps
// ErrCorrupt and names every file that fails.
func Verify(dir string, drop func() error) error {
	if drop != nil {
		if err := drop(); err != nil {
			return fmt.Errorf("backup: drop caches before read-back: %w", err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return media.Failure(err)
	}
	defer r.Close()
	sumsData, err := readSumsFile(r)
	if err != nil {
		return err
	}
	sums, err := parseSums(sumsData)
	if err != nil {
		return err
	}
	sizes, err := verifyStored(r, sums)
	if err != nil {
		return err
	}
	mname, mdata, err := readManifestBytes(r)
	if err != nil {
		return err
	}
	if sums[mname] != hexSum(mdata) {
		return fmt.Errorf("%w: %s: %s is not the one %s lists", ErrCorrupt, dir, mname, SumsFile)
	}
	if mname != ManifestFile {
		return nil
	}
	m, err := parseManifest(mdata, false)
	if err != nil {
		return err
	}
	bad := crossCheck(m, mname, sums, sizes)
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	for _, e := range m.Entries {
		if e.Type != "file" {
			continue
		}
		if err := readEntry(r, e, false, nil, io.Discard); errors.Is(err, ErrCorrupt) {
			bad = append(bad, e.Path+" (content differs from the manifest)")
		} else if err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	return nil
}

// verifyStored hashes every file SHA256SUMS lists, inside the backup
// folder r, and returns their sizes.
func verifyStored(r *os.Root, sums map[string]string) (map[string]int64, error) {
	sizes := map[string]int64{}
	var bad []string
	for _, n := range slices.Sorted(maps.Keys(sums)) {
		got, size, err := hashStored(r, n)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			bad = append(bad, n+" (missing)")
		case errors.Is(err, ErrCorrupt):
			bad = append(bad, n+" (not a regular file)")
		case err != nil:
			return nil, media.Failure(fmt.Errorf("backup: read back %s: %w", n, err))
		case got != sums[n]:
			bad = append(bad, n+" (sha256 differs)")
		}
		sizes[n] = size
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, r.Name(), strings.Join(bad, ", "))
	}
	return sizes, nil
}

// hashStored returns the SHA-256 and size of the stored file name.
func hashStored(r *os.Root, name string) (string, int64, error) {
	f, _, err := openStored(r, name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// readSumsFile reads SHA256SUMS; a backup without one is incomplete.
func readSumsFile(r *os.Root) ([]byte, error) {
	data, err := readBounded(r, SumsFile, maxSumsBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrIncomplete, r.Name(), SumsFile)
	}
	return data, err
}

// MarkComplete writes COMPLETE, naming the hash of SHA256SUMS: call it only
// after Verify passed.
func MarkComplete(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return media.Failure(err)
	}
	return media.Failure(atomicfile.WriteFile(filepath.Join(dir, CompleteFile), completeLine(data), 0o644))
}

func completeLine(sums []byte) []byte {
	return fmt.Appendf(nil, "complete %x %s\n", sha256.Sum256(sums), SumsFile)
}

// IsComplete reports whether dir holds a backup marked complete whose
// SHA256SUMS is the one that was verified.
func IsComplete(dir string) bool {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer r.Close()
	sums, err := readSumsFile(r)
	return err == nil && completes(r, sums) == nil
}

// completes checks that COMPLETE names sums, the SHA256SUMS read.
func completes(r *os.Root, sums []byte) error {
	mark, err := readBounded(r, CompleteFile, 256)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err != nil || !bytes.Equal(mark, completeLine(sums)) {
		return fmt.Errorf("%w: %s", ErrIncomplete, r.Name())
	}
	return nil
}

// decryptManifest decrypts an encrypted manifest with ids.
func decryptManifest(data []byte, ids []age.Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, ErrNoIdentity
	}
	dr, err := age.Decrypt(bytes.NewReader(data), ids...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoIdentity, err)
	}
	plain, err := io.ReadAll(io.LimitReader(dr, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	return plain, nil
}

// Load reads and checks (but does not verify) the manifest of a backup,
// decrypting it with ids if needed.
func Load(dir string, ids []age.Identity) (*Manifest, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, media.Failure(err)
	}
	defer r.Close()
	mname, data, err := readManifestBytes(r)
	if err != nil {
		return nil, err
	}
	encrypted := mname != ManifestFile
	if encrypted {
		if data, err = decryptManifest(data, ids); err != nil {
			return nil, err
		}
	}
	return parseManifest(data, encrypted)
}
