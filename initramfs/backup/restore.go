package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/passeur/passeur/initramfs/atomicfile"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Identities decrypt an encrypted backup.
	Identities []age.Identity
	// Map gives, for a path of the old system, where it goes under the
	// root (default: the same path). Returning "" leaves the entry out.
	Map func(string) string
	// Progress, when set, is told of every byte restored.
	Progress *Progress
}

// Restore puts the backup in dir back under root, with modes, owners and
// times. Nothing is written before the whole backup verified: its stored
// files against SHA256SUMS, then every restored file's content against the
// manifest (decrypted, when encrypted). Each file is written under a
// temporary name, synced and renamed. It returns the entries restored.
func Restore(dir, root string, o RestoreOptions) ([]Entry, error) {
	if !IsComplete(dir) {
		return nil, fmt.Errorf("%w: %s", ErrIncomplete, dir)
	}
	if err := Verify(dir, nil); err != nil {
		return nil, err
	}
	m, _, err := readManifest(dir, o.Identities)
	if err != nil {
		return nil, err
	}
	entries := restored(m.Entries, o.Map)
	var bad []string
	var total int64
	for _, e := range entries {
		if e.Type != "file" {
			continue
		}
		total += e.Size
		if err := readEntry(dir, e.Entry, len(m.Recipients) > 0, o.Identities, io.Discard); err != nil {
			bad = append(bad, fmt.Sprintf("%s (%v)", e.Path, err))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	o.Progress.Start(total)
	for _, e := range entries {
		dst := filepath.Join(root, filepath.FromSlash(e.dest))
		var err error
		switch e.Type {
		case "dir":
			err = os.MkdirAll(dst, 0o755)
		case "symlink":
			os.Remove(dst)
			err = os.Symlink(e.Target, dst)
		case "file":
			err = restoreFile(dir, dst, e.Entry, len(m.Recipients) > 0, o)
		}
		if err == nil && e.Type != "file" {
			err = setMeta(dst, e.Entry, false)
		}
		if err != nil {
			return nil, fmt.Errorf("backup: restore %s to %s: %w", e.Path, dst, err)
		}
	}
	// Folders last, deepest first: writing into them changed their times.
	for i := len(entries) - 1; i >= 0; i-- {
		if e := entries[i]; e.Type == "dir" {
			if err := setMeta(filepath.Join(root, filepath.FromSlash(e.dest)), e.Entry, true); err != nil {
				return nil, err
			}
		}
	}
	o.Progress.Finish()
	var out []Entry
	for _, e := range entries {
		out = append(out, e.Entry)
	}
	return out, nil
}

type placed struct {
	Entry
	dest string
}

// restored lists what is put back and where: system entries, except those
// a recovered entry replaces, and recovered entries, folders first.
func restored(all []Entry, mapper func(string) string) []placed {
	recovered := map[string]bool{}
	for _, e := range all {
		if e.Origin == OriginRecovered {
			recovered[e.Path] = true
		}
	}
	var es []Entry
	for _, e := range all {
		if !e.Restored() || e.Origin == OriginSystem && recovered[e.Path] {
			continue
		}
		es = append(es, e)
	}
	sortEntries(es)
	var out []placed
	for _, e := range es {
		dest := e.Path
		if mapper != nil {
			dest = mapper(e.Path)
		}
		if dest == "" {
			continue
		}
		out = append(out, placed{e, path.Clean("/" + dest)})
	}
	return out
}

// readEntry streams an entry's content, decrypted, into w and checks its
// size and hash.
func readEntry(dir string, e Entry, encrypted bool, ids []age.Identity, w io.Writer) error {
	var readers []io.Reader
	for _, p := range e.Pieces {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(p.Name)))
		if err != nil {
			return Media(err)
		}
		defer f.Close()
		readers = append(readers, f)
	}
	var r io.Reader = io.MultiReader(readers...)
	if encrypted {
		if len(ids) == 0 {
			return ErrNoIdentity
		}
		dr, err := age.Decrypt(r, ids...)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNoIdentity, err)
		}
		r = dr
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(h, w), r, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return errors.New("content differs from the manifest")
	}
	return nil
}

func restoreFile(dir, dst string, e Entry, encrypted bool, o RestoreOptions) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".passeur-tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = readEntry(dir, e, encrypted, o.Identities, progressWriter{f, o.Progress})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = setMeta(tmp, e, true)
	}
	if err == nil {
		err = atomicfile.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

type progressWriter struct {
	w io.Writer
	p *Progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.Add(int64(n))
	return n, err
}

// setMeta gives p the entry's owner, mode and modification time.
func setMeta(p string, e Entry, times bool) error {
	if err := os.Lchown(p, e.UID, e.GID); err != nil {
		return err
	}
	if e.Type != "symlink" {
		mode := os.FileMode(e.Mode & 0o777)
		if e.Mode&0o4000 != 0 {
			mode |= os.ModeSetuid
		}
		if e.Mode&0o2000 != 0 {
			mode |= os.ModeSetgid
		}
		if e.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if times {
			return os.Chtimes(p, time.Time{}, e.MTime)
		}
		return nil
	}
	return nil
}
