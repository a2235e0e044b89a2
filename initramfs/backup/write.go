package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"filippo.io/age"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/progress"
)

// Item is something to back up: an entry's metadata and where its content
// comes from, a file (Source) or bytes (Data).
type Item struct {
	Entry
	Source string
	Data   []byte
	// base and rel, for an item Collect found: the root it was found in
	// and its path there, opened again inside that root to be stored.
	base, rel string
}

// Collect lists, under root (where the system's root filesystem is
// mounted), the files, folders and links of each absolute path, walking
// folders in lexical order, inside root: a link is recorded, never
// followed, and a path through a link that leaves root is an error. Paths
// the system does not have are returned apart: a product may list
// optional ones.
func Collect(root string, paths []string, origin string) (items []Item, missing []string, err error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	defer r.Close()
	for _, p := range paths {
		p = path.Clean("/" + p)
		rel := strings.TrimPrefix(p, "/")
		if rel == "" {
			rel = "."
		}
		st, err := r.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, p)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("backup: read %s: %w", p, err)
		}
		if !st.IsDir() { // a file, or a link recorded as such
			it, ok, err := itemOf(r, root, rel, origin)
			if err != nil {
				return nil, nil, fmt.Errorf("backup: read %s: %w", p, err)
			}
			if ok {
				items = append(items, it)
			}
			continue
		}
		err = fs.WalkDir(r.FS(), rel, func(f string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			it, ok, err := itemOf(r, root, f, origin)
			if ok {
				items = append(items, it)
			}
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("backup: read %s: %w", p, err)
		}
	}
	return items, missing, nil
}

// itemOf describes the file rel of root (mounted at base); sockets,
// devices and fifos are skipped.
func itemOf(root *os.Root, base, rel, origin string) (Item, bool, error) {
	st, err := root.Lstat(rel)
	if err != nil {
		return Item{}, false, err
	}
	e := Entry{Path: path.Clean("/" + rel), Origin: origin, Mode: uint32(st.Mode().Perm()), MTime: st.ModTime().UTC()}
	if st.Mode()&fs.ModeSetuid != 0 {
		e.Mode |= 0o4000
	}
	if st.Mode()&fs.ModeSetgid != 0 {
		e.Mode |= 0o2000
	}
	if st.Mode()&fs.ModeSticky != 0 {
		e.Mode |= 0o1000
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(sys.Uid), int(sys.Gid)
	}
	switch {
	case st.Mode().IsRegular():
		e.Type, e.Size = "file", st.Size()
		return Item{Entry: e, Source: filepath.Join(base, rel), base: base, rel: rel}, true, nil
	case st.IsDir():
		e.Type = "dir"
	case st.Mode()&fs.ModeSymlink != 0:
		e.Type = "symlink"
		if e.Target, err = root.Readlink(rel); err != nil {
			return Item{}, false, err
		}
	default:
		return Item{}, false, nil
	}
	return Item{Entry: e}, true, nil
}

// open opens a collected file again inside its root, a regular file
// only, without blocking (a FIFO put there since is refused).
func (it Item) open() (*os.File, error) {
	if it.base == "" {
		return os.Open(it.Source)
	}
	r, err := os.OpenRoot(it.base)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if st, err := r.Lstat(it.rel); err != nil || !st.Mode().IsRegular() {
		return nil, errors.Join(fmt.Errorf("%w: %s is no longer a regular file", ErrSourceChanged, it.Path), err)
	}
	f, err := r.OpenFile(it.rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errors.Join(fmt.Errorf("%w: %s is no longer a regular file", ErrSourceChanged, it.Path), err)
	}
	return f, nil
}

// Options tune Write.
type Options struct {
	// Recipients, when set, encrypt every stored file to them with age.
	Recipients []string
	// PieceSize, when smaller, overrides PieceSize (tests split small
	// files): restore refuses larger pieces.
	PieceSize int64
	// Progress, when set, is told of every byte stored.
	Progress *progress.Progress
	// Stored is called for each entry once it is on the media (synced,
	// with its batch); the journal records it there. An error stops the
	// backup.
	Stored func(Entry) error
	// Reuse gives an entry an interrupted earlier run stored in the same
	// folder; it is kept when its pieces still hash as recorded and the
	// source has not changed, instead of copying again.
	Reuse func(path, origin string) (Entry, bool)
}

// Write stores items in dir (made if needed) and writes the manifest and
// SHA256SUMS. It does not mark the backup complete: Verify, after reading
// everything back, does.
func Write(dir string, m Manifest, items []Item, o Options) (*Manifest, error) {
	if o.PieceSize <= 0 || o.PieceSize > PieceSize {
		o.PieceSize = PieceSize
	}
	var recipients []age.Recipient
	for _, r := range o.Recipients {
		rec, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, fmt.Errorf("backup: age recipient %q: %w", r, err)
		}
		recipients = append(recipients, rec)
	}
	m.Format, m.Recipients = Format, o.Recipients
	if err := clashes(items); err != nil {
		return nil, err
	}
	if o.Progress != nil {
		var total int64
		for _, it := range items {
			total += it.Size
		}
		o.Progress.Start(total)
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return nil, media.Failure(err)
	}
	removeTemporary(dir)
	b := &batch{dir: dir, stored: o.Stored}
	for _, it := range items {
		e := it.Entry
		fresh := false
		if e.Type == "file" {
			if old, ok := reusable(dir, it, len(recipients), o.Reuse); ok {
				e = old
				o.Progress.Add(e.Size)
			} else {
				var err error
				if e, err = store(dir, it, recipients, o); err != nil {
					return nil, err
				}
				fresh = true
			}
		}
		m.Entries = append(m.Entries, e)
		if err := b.add(e, fresh); err != nil {
			return nil, media.Failure(err)
		}
	}
	if err := b.flush(); err != nil {
		return nil, media.Failure(err)
	}
	o.Progress.Finish()
	mdata, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	mdata = append(mdata, '\n')
	mname := ManifestFile
	if len(recipients) > 0 {
		if mdata, err = encrypt(mdata, recipients); err != nil {
			return nil, err
		}
		mname += ".age"
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, mname), mdata, 0o644); err != nil {
		return nil, media.Failure(err)
	}
	var sums bytes.Buffer
	for _, e := range m.Entries {
		for _, p := range e.Pieces {
			fmt.Fprintf(&sums, "%s  %s\n", p.SHA256, p.Name)
		}
	}
	fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(mdata), mname)
	if err := atomicfile.WriteFile(filepath.Join(dir, SumsFile), sums.Bytes(), 0o644); err != nil {
		return nil, media.Failure(err)
	}
	return &m, nil
}

// removeTemporary removes what an interrupted run left under temporary
// names: never part of a backup, they only take room.
func removeTemporary(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tmp") {
			os.Remove(p)
		}
		return nil
	})
}

// clashes refuses paths FAT would store as one.
func clashes(items []Item) error {
	seen := map[string]string{}
	for _, it := range items {
		k := strings.ToLower(storedName(it.Origin, it.Path))
		if other, ok := seen[k]; ok && other != it.Path {
			return fmt.Errorf("%w: %s and %s", ErrNameClash, other, it.Path)
		}
		seen[k] = it.Path
	}
	return nil
}

// reusable reports whether an earlier run's entry for it can stay: the
// same file, stored as this run stores it, its pieces intact.
func reusable(dir string, it Item, recipients int, reuse func(string, string) (Entry, bool)) (Entry, bool) {
	if reuse == nil {
		return Entry{}, false
	}
	old, ok := reuse(it.Path, it.Origin)
	if !ok || old.Path != it.Path || old.Origin != it.Origin || old.Type != "file" || old.Size != it.Size || checkPieces(old, recipients) != nil {
		return Entry{}, false
	}
	if it.Data != nil {
		// Made by passeur at each run: the same content is the same entry.
		if old.SHA256 != hexSum(it.Data) {
			return Entry{}, false
		}
		old.MTime, old.Mode, old.UID, old.GID = it.MTime, it.Mode, it.UID, it.GID
	} else if !old.MTime.Equal(it.MTime) || old.Mode != it.Mode || old.UID != it.UID || old.GID != it.GID {
		return Entry{}, false
	}
	for _, p := range old.Pieces {
		sum, n, err := hashFile(filepath.Join(dir, filepath.FromSlash(p.Name)))
		if err != nil || n != p.Size || sum != p.SHA256 {
			return Entry{}, false
		}
	}
	return old, true
}

// store copies one file to the media: content hashed as it is read,
// encrypted if asked, cut into pieces, each written under a temporary name,
// synced and renamed.
func store(dir string, it Item, recipients []age.Recipient, o Options) (Entry, error) {
	e := it.Entry
	var src io.Reader = bytes.NewReader(it.Data)
	if it.Data == nil {
		f, err := it.open()
		if err != nil {
			return e, fmt.Errorf("backup: %s: %w", it.Path, err)
		}
		defer f.Close()
		src = f
	}
	name := storedName(e.Origin, e.Path)
	stored := e.Size
	if len(recipients) > 0 {
		name += ".age"
		stored += 1024 + 16*(e.Size/(64<<10)+1) // header and per-chunk tags, generously
	}
	pw := &pieceWriter{dir: dir, base: name, split: stored > o.PieceSize, max: o.PieceSize}
	var sink io.WriteCloser = nopCloser{pw}
	if len(recipients) > 0 {
		w, err := age.Encrypt(pw, recipients...)
		if err != nil {
			return e, err
		}
		sink = w
	}
	content := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			content.Write(buf[:k])
			if _, err := sink.Write(buf[:k]); err != nil {
				pw.abort()
				return e, fmt.Errorf("backup: %s: %w", e.Path, media.Failure(err))
			}
			n += int64(k)
			o.Progress.Add(int64(k))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			pw.abort()
			return e, fmt.Errorf("backup: read %s: %w", e.Path, rerr)
		}
	}
	if err := sink.Close(); err != nil {
		pw.abort()
		return e, fmt.Errorf("backup: %s: %w", e.Path, media.Failure(err))
	}
	if err := pw.close(); err != nil {
		return e, fmt.Errorf("backup: %s: %w", e.Path, media.Failure(err))
	}
	if n != e.Size {
		return e, fmt.Errorf("%w: %s was %d bytes, %d read", ErrSourceChanged, e.Path, e.Size, n)
	}
	e.SHA256 = hex.EncodeToString(content.Sum(nil))
	e.Pieces = pw.pieces
	return e, nil
}

// Batches: pieces are written under temporary names, then, every
// batchBytes or batchEntries, the filesystem is synced once, the pieces are
// renamed to their names, and it is synced again; only then are their
// entries reported stored. One flush for many files instead of three
// syncs per file, with the same guarantee: a name only ever points at
// complete, synced content.
const (
	batchBytes   = 32 << 20
	batchEntries = 256
)

type batch struct {
	dir     string
	stored  func(Entry) error
	entries []Entry
	fresh   []string // pieces under temporary names
	bytes   int64
}

func (b *batch) add(e Entry, fresh bool) error {
	b.entries = append(b.entries, e)
	if fresh {
		for _, p := range e.Pieces {
			b.fresh = append(b.fresh, filepath.Join(b.dir, filepath.FromSlash(p.Name)))
			b.bytes += p.Size
		}
	}
	if b.bytes >= batchBytes || len(b.entries) >= batchEntries {
		return b.flush()
	}
	return nil
}

func (b *batch) flush() error {
	if len(b.fresh) > 0 {
		if err := atomicfile.SyncFS(b.dir); err != nil {
			return err
		}
		for _, p := range b.fresh {
			if err := os.Rename(p+".tmp", p); err != nil {
				return err
			}
		}
		if err := atomicfile.SyncFS(b.dir); err != nil {
			return err
		}
	}
	if b.stored != nil {
		for _, e := range b.entries {
			if err := b.stored(e); err != nil {
				return err
			}
		}
	}
	b.entries, b.fresh, b.bytes = nil, nil, 0
	return nil
}

// pieceWriter writes a stream as one file, or as numbered pieces of at most
// max bytes, each under a temporary name until it is complete and synced.
type pieceWriter struct {
	dir, base string
	split     bool
	max       int64
	f         *os.File
	name      string
	n         int64
	h         hash.Hash
	pieces    []Piece
}

func (w *pieceWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		if w.f == nil {
			if err := w.open(); err != nil {
				return written, err
			}
		}
		k := len(b)
		if w.split && int64(k) > w.max-w.n {
			k = int(w.max - w.n)
		}
		m, err := w.f.Write(b[:k])
		w.h.Write(b[:m])
		w.n += int64(m)
		written += m
		if err != nil {
			return written, err
		}
		b = b[k:]
		if w.split && w.n == w.max {
			if err := w.seal(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (w *pieceWriter) open() error {
	w.name = w.base
	if w.split {
		w.name = fmt.Sprintf("%s.%03d", w.base, len(w.pieces))
	}
	p := filepath.Join(w.dir, filepath.FromSlash(w.name))
	if err := atomicfile.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w.f, w.n, w.h = f, 0, sha256.New()
	return nil
}

// seal closes the current piece, still under its temporary name: the
// batch syncs and renames it.
func (w *pieceWriter) seal() error {
	p := filepath.Join(w.dir, filepath.FromSlash(w.name))
	err := w.f.Close()
	w.f = nil
	if err != nil {
		os.Remove(p + ".tmp")
		return err
	}
	w.pieces = append(w.pieces, Piece{Name: w.name, Size: w.n, SHA256: hex.EncodeToString(w.h.Sum(nil))})
	return nil
}

func (w *pieceWriter) close() error {
	if w.f == nil && len(w.pieces) == 0 {
		if err := w.open(); err != nil { // an empty file is still one piece
			return err
		}
	}
	if w.f != nil {
		return w.seal()
	}
	return nil
}

func (w *pieceWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(filepath.Join(w.dir, filepath.FromSlash(w.name)) + ".tmp")
		w.f = nil
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func encrypt(data []byte, recipients []age.Recipient) ([]byte, error) {
	var b bytes.Buffer
	w, err := age.Encrypt(&b, recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// hashFile returns the SHA-256 and size of the file at p.
func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil)), n, err
}
