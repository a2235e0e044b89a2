package backup

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/passeur/passeur/initramfs/media"
)

// Bounds on what a backup folder may hold: a reader refuses more, before
// holding it in memory.
const (
	maxManifestBytes = 32 << 20
	maxSumsBytes     = 32 << 20
	maxEntries       = 100_000
	maxSums          = 2 * maxEntries
	maxPieces        = 4096 // per entry: 16 TiB in pieces of PieceSize
	maxPathBytes     = 4096
	maxRecipients    = 64
)

// openStored opens the regular file name inside the backup folder r,
// without blocking on a FIFO, and returns its size.
func openStored(r *os.Root, name string) (*os.File, int64, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, media.Failure(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, media.Failure(err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, name)
	}
	return f, st.Size(), nil
}

// readBounded reads the file name of the backup folder r, refusing one of
// more than max bytes.
func readBounded(r *os.Root, name string, max int64) ([]byte, error) {
	f, size, err := openStored(r, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, at most %d read", ErrCorrupt, name, size, max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, media.Failure(err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s grew past %d bytes", ErrCorrupt, name, max)
	}
	return data, nil
}

// readManifestBytes reads the manifest of the backup folder r as it is on
// the media, plain or encrypted, and returns its name.
func readManifestBytes(r *os.Root) (string, []byte, error) {
	_, plainErr := r.Lstat(ManifestFile)
	_, ageErr := r.Lstat(ManifestFile + ".age")
	switch {
	case plainErr == nil && ageErr == nil:
		return "", nil, fmt.Errorf("%w: %s holds both %s and %s.age", ErrCorrupt, r.Name(), ManifestFile, ManifestFile)
	case plainErr != nil && ageErr != nil:
		return "", nil, fmt.Errorf("%w: %s has no manifest", ErrIncomplete, r.Name())
	}
	name := ManifestFile
	if ageErr == nil {
		name += ".age"
	}
	data, err := readBounded(r, name, maxManifestBytes)
	return name, data, err
}

// parseSums parses SHA256SUMS: lines of a lower-case SHA-256, two spaces
// and a name, each name once, and each the manifest's or one the writer
// makes (validStoredName).
func parseSums(data []byte) (map[string]string, error) {
	if len(data) > maxSumsBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, at most %d read", ErrCorrupt, SumsFile, len(data), maxSumsBytes)
	}
	sums := map[string]string{}
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		sum, name, ok := strings.Cut(string(line), "  ")
		if !ok || !isSum(sum) || !(name == ManifestFile || name == ManifestFile+".age" || validStoredName(name)) {
			return nil, fmt.Errorf("%w: %s: bad line %q", ErrCorrupt, SumsFile, line)
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("%w: %s lists %s twice", ErrCorrupt, SumsFile, name)
		}
		if len(sums) == maxSums {
			return nil, fmt.Errorf("%w: %s lists more than %d files", ErrCorrupt, SumsFile, maxSums)
		}
		sums[name] = sum
	}
	return sums, nil
}

// isSum reports whether s is a SHA-256 as the writer spells it.
func isSum(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && hex.EncodeToString(b) == s
}

// validStoredName reports whether name is one storedName makes, with or
// without the writer's suffixes: a folder of stored files, then elements
// that fatSafe leaves as they are once unescaped (so never empty, ".",
// "..", a control byte or a byte FAT refuses).
func validStoredName(name string) bool {
	dir, rest, ok := strings.Cut(name, "/")
	if !ok || dir != originDir(OriginSystem) && dir != originDir(OriginRecovered) && dir != originDir(OriginPasseur) {
		return false
	}
	for _, e := range strings.Split(rest, "/") {
		raw, ok := unescapeFAT(e)
		if !ok || raw == "" || fatSafe(raw) != e {
			return false
		}
	}
	return true
}

// unescapeFAT undoes fatSafe's %XX escapes (validStoredName's round trip
// refuses the spellings fatSafe does not make).
func unescapeFAT(e string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(e); i++ {
		if e[i] != '%' {
			b.WriteByte(e[i])
			continue
		}
		if i+2 >= len(e) {
			return "", false
		}
		v, err := hex.DecodeString(e[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

// parseManifest parses a manifest and checks it (checkManifest).
func parseManifest(data []byte, encrypted bool) (*Manifest, error) {
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest is %d bytes, at most %d read", ErrCorrupt, len(data), maxManifestBytes)
	}
	m := &Manifest{}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	if err := checkManifest(m, encrypted); err != nil {
		return nil, err
	}
	return m, nil
}

// checkManifest checks what a manifest says against the rules its writer
// follows: format, bounded counts, each entry a clean absolute path once,
// of a known origin and type, each file's pieces named as the writer
// names them and as large, together, as its content (plain) or as its
// content with age's overhead (encrypted). A manifest breaking a rule was
// not written by passeur.
func checkManifest(m *Manifest, encrypted bool) error {
	switch {
	case m.Format != Format:
		return fmt.Errorf("%w: manifest format %d, this passeur reads %d", ErrCorrupt, m.Format, Format)
	case encrypted && len(m.Recipients) == 0:
		return fmt.Errorf("%w: encrypted manifest lists no recipients", ErrCorrupt)
	case !encrypted && len(m.Recipients) > 0:
		return fmt.Errorf("%w: plain manifest lists recipients", ErrCorrupt)
	case len(m.Recipients) > maxRecipients, len(m.Entries) > maxEntries, len(m.Missing) > maxEntries:
		return fmt.Errorf("%w: manifest lists %d recipients, %d entries, %d missing paths: more than passeur writes",
			ErrCorrupt, len(m.Recipients), len(m.Entries), len(m.Missing))
	}
	seen := map[string]bool{}
	for _, e := range m.Entries {
		if err := checkPath(e.Path); err != nil {
			return fmt.Errorf("%w: %q: %s", ErrUnsafeEntry, e.Path, err)
		}
		if originDir(e.Origin) == "" {
			return fmt.Errorf("%w: %s: origin %q", ErrCorrupt, e.Path, e.Origin)
		}
		key := strings.ToLower(storedName(e.Origin, e.Path))
		if seen[key] {
			return fmt.Errorf("%w: %s comes twice", ErrUnsafeEntry, e.Path)
		}
		seen[key] = true
		if e.Mode&^0o7777 != 0 || !validID(e.UID) || !validID(e.GID) {
			return fmt.Errorf("%w: %s: mode %o, owner %d:%d", ErrCorrupt, e.Path, e.Mode, e.UID, e.GID)
		}
		if (e.Type == "symlink") != (e.Target != "") || len(e.Target) > maxPathBytes || strings.IndexByte(e.Target, 0) >= 0 {
			return fmt.Errorf("%w: %s: a %s with target %q", ErrUnsafeEntry, e.Path, e.Type, e.Target)
		}
		switch e.Type {
		case "file":
			if err := checkPieces(e, len(m.Recipients)); err != nil {
				return err
			}
		case "dir", "symlink":
			if e.Size != 0 || e.SHA256 != "" || len(e.Pieces) > 0 {
				return fmt.Errorf("%w: %s: a %s with content", ErrCorrupt, e.Path, e.Type)
			}
		default:
			return fmt.Errorf("%w: %s: type %q", ErrCorrupt, e.Path, e.Type)
		}
	}
	return nil
}

// checkPath checks that p is absolute, clean and not the root.
func checkPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("not absolute")
	case path.Clean(p) != p:
		return fmt.Errorf("not clean")
	case p == "/":
		return fmt.Errorf("the root itself")
	case len(p) > maxPathBytes || strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("not a path")
	}
	return nil
}

// checkPieces checks a file entry's pieces: named as the writer names
// them (storedName, ".age" when encrypted to recipients, ".000"… when
// split) and adding up to its size.
func checkPieces(e Entry, recipients int) error {
	n := len(e.Pieces)
	if !isSum(e.SHA256) || e.Size < 0 || n == 0 || n > maxPieces {
		return fmt.Errorf("%w: %s: size %d, sha256 %q, %d pieces", ErrCorrupt, e.Path, e.Size, e.SHA256, n)
	}
	base := storedName(e.Origin, e.Path)
	if recipients > 0 {
		base += ".age"
	}
	var stored int64
	for i, p := range e.Pieces {
		want := base
		if n > 1 || p.Name != base {
			want = fmt.Sprintf("%s.%03d", base, i)
		}
		if p.Name != want {
			return fmt.Errorf("%w: %s: piece %d is named %q, not %q", ErrCorrupt, e.Path, i, p.Name, want)
		}
		if !isSum(p.SHA256) || p.Size < 0 || p.Size > PieceSize {
			return fmt.Errorf("%w: %s: piece %s of %d bytes, sha256 %q", ErrCorrupt, e.Path, p.Name, p.Size, p.SHA256)
		}
		stored += p.Size
	}
	most := e.Size
	if recipients > 0 {
		most += ageOverhead(e.Size, recipients)
	}
	if stored < e.Size || stored > most {
		return fmt.Errorf("%w: %s: %d bytes stored for %d of content", ErrCorrupt, e.Path, stored, e.Size)
	}
	return nil
}

// ageOverhead bounds what age adds to size bytes encrypted to recipients:
// a header with a stanza per recipient, and a 16-byte tag per 64 KiB
// chunk.
func ageOverhead(size int64, recipients int) int64 {
	return 512 + 256*int64(recipients) + 16*(size/(64<<10)+1)
}

// crossCheck checks the manifest against SHA256SUMS and the sizes of the
// files read: every piece listed with the manifest's hash and size, and
// nothing listed that is neither a piece nor the manifest.
func crossCheck(m *Manifest, mname string, sums map[string]string, sizes map[string]int64) []string {
	var bad []string
	listed := map[string]bool{mname: true}
	for _, e := range m.Entries {
		for _, p := range e.Pieces {
			listed[p.Name] = true
			switch sum, ok := sums[p.Name]; {
			case !ok || sum != p.SHA256:
				bad = append(bad, p.Name+" (not in "+SumsFile+" as the manifest says)")
			case sizes[p.Name] != p.Size:
				bad = append(bad, fmt.Sprintf("%s (%d bytes, the manifest says %d)", p.Name, sizes[p.Name], p.Size))
			}
		}
	}
	if _, ok := sums[mname]; !ok {
		bad = append(bad, mname+" (not in "+SumsFile+")")
	}
	for _, n := range slices.Sorted(maps.Keys(sums)) {
		if !listed[n] {
			bad = append(bad, n+" (in "+SumsFile+", not in the manifest)")
		}
	}
	return bad
}

// validID reports whether a uid or gid can be given with chown: -1 there
// means "leave as it is".
func validID(id int) bool { return id >= 0 && int64(id) < 1<<32-1 }
