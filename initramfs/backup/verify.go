package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/passeur/passeur/initramfs/atomicfile"
)

// Verify reads every stored file of the backup in dir back from the media
// and checks it against SHA256SUMS, and checks the manifest against them:
// each entry's pieces listed with their hashes and, for plain backups, each
// file's content hash across its pieces. drop, when set, is called first to
// empty the page cache so that the media itself is read. The error wraps
// ErrCorrupt and names every file that fails.
func Verify(dir string, drop func() error) error {
	if drop != nil {
		if err := drop(); err != nil {
			return fmt.Errorf("backup: drop caches before read-back: %w", err)
		}
	}
	sums, err := readSums(dir)
	if err != nil {
		return err
	}
	var bad []string
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		got, _, err := hashFile(filepath.Join(dir, filepath.FromSlash(n)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			bad = append(bad, n+" (missing)")
		case err != nil:
			return Media(fmt.Errorf("backup: read back %s: %w", n, err))
		case got != sums[n]:
			bad = append(bad, n+" (sha256 differs)")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	m, encrypted, err := readManifest(dir, nil)
	if encrypted {
		return nil // the pieces are checked; the manifest needs the identity
	}
	if err != nil {
		return err
	}
	for _, e := range m.Entries {
		if e.Type != "file" {
			continue
		}
		h := sha256.New()
		var size int64
		for _, p := range e.Pieces {
			if sums[p.Name] != p.SHA256 {
				bad = append(bad, p.Name+" (not in "+SumsFile+" as the manifest says)")
				continue
			}
			n, err := copyFile(h, filepath.Join(dir, filepath.FromSlash(p.Name)))
			if err != nil {
				return Media(err)
			}
			size += n
		}
		if size != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			bad = append(bad, e.Path+" (content differs from the manifest)")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	return nil
}

// MarkComplete writes COMPLETE, naming the hash of SHA256SUMS: call it only
// after Verify passed.
func MarkComplete(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return Media(err)
	}
	line := fmt.Sprintf("complete %x %s\n", sha256.Sum256(data), SumsFile)
	return Media(atomicfile.WriteFile(filepath.Join(dir, CompleteFile), []byte(line), 0o644))
}

// IsComplete reports whether dir holds a backup marked complete whose
// SHA256SUMS is the one that was verified.
func IsComplete(dir string) bool {
	mark, err := os.ReadFile(filepath.Join(dir, CompleteFile))
	if err != nil {
		return false
	}
	data, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return false
	}
	return string(mark) == fmt.Sprintf("complete %x %s\n", sha256.Sum256(data), SumsFile)
}

// readSums parses SHA256SUMS.
func readSums(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, SumsFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s", ErrIncomplete, dir, SumsFile)
		}
		return nil, Media(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || name == "" || strings.Contains(name, "..") {
			return nil, fmt.Errorf("%w: %s: bad line %q", ErrCorrupt, SumsFile, sc.Text())
		}
		sums[name] = sum
	}
	return sums, Media(sc.Err())
}

// readManifest reads the manifest of the backup in dir, decrypting it with
// ids when it is encrypted; encrypted reports that it is.
func readManifest(dir string, ids []age.Identity) (m *Manifest, encrypted bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		data, err = os.ReadFile(filepath.Join(dir, ManifestFile+".age"))
		if err != nil {
			return nil, false, fmt.Errorf("%w: %s has no manifest", ErrIncomplete, dir)
		}
		encrypted = true
		if len(ids) == 0 {
			return nil, true, ErrNoIdentity
		}
		r, err := age.Decrypt(bytes.NewReader(data), ids...)
		if err != nil {
			return nil, true, fmt.Errorf("%w: %w", ErrNoIdentity, err)
		}
		if data, err = io.ReadAll(r); err != nil {
			return nil, true, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
		}
	} else if err != nil {
		return nil, false, Media(err)
	}
	m = &Manifest{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, encrypted, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	if m.Format != Format {
		return nil, encrypted, fmt.Errorf("%w: manifest format %d, this passeur reads %d", ErrCorrupt, m.Format, Format)
	}
	return m, encrypted, nil
}

// Load reads the manifest of a complete backup (decrypting it with ids if
// needed).
func Load(dir string, ids []age.Identity) (*Manifest, error) {
	m, _, err := readManifest(dir, ids)
	return m, err
}

func copyFile(w io.Writer, p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(w, f, make([]byte, 1<<20))
}

// Info is one backup folder of a host.
type Info struct {
	Name     string // the folder's name, its UTC stamp
	Dir      string
	Complete bool
}

// List returns the backups of host under the media's root, oldest first.
func List(mediaRoot, host string) ([]Info, error) {
	base := filepath.Join(mediaRoot, Root, HostName(host))
	ents, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, Media(err)
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(base, e.Name())
		out = append(out, Info{Name: e.Name(), Dir: d, Complete: IsComplete(d)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Choose picks the backup to restore: the one named, or else the newest
// complete one.
func Choose(list []Info, name string) (Info, error) {
	for i := len(list) - 1; i >= 0; i-- {
		b := list[i]
		if name != "" && b.Name != name {
			continue
		}
		if !b.Complete {
			if name != "" {
				return b, fmt.Errorf("%w: %s was never marked complete (interrupted?)", ErrIncomplete, name)
			}
			continue
		}
		return b, nil
	}
	var names []string
	for _, b := range list {
		names = append(names, b.Name)
	}
	if name != "" {
		return Info{}, fmt.Errorf("%w: none named %q (found: %s)", ErrNoBackup, name, strings.Join(names, ", "))
	}
	return Info{}, fmt.Errorf("%w (found: %s)", ErrNoBackup, strings.Join(names, ", "))
}
