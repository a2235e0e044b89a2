// Package rollback keeps the way back: before a migration's first write,
// the bytes of the system disk it will overwrite (the old partitions in
// the new layout's way, the old table) are saved on the install media,
// compressed, hashed and read back; from that save the old system is put
// back byte for byte, with the kept data partitions never touched.
//
// A save is a folder of pieces (at most PieceSize raw bytes each, zstd)
// and the manifest rollback.json, written last: a save without it does not
// exist. Everything read back from the media is checked before a byte of
// it reaches the disk: the manifest's shape, each piece's stored and raw
// hashes and lengths.
package rollback

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/image/atomicfile"
)

// ManifestFile names a save's manifest in its folder.
const ManifestFile = "rollback.json"

// PieceSize is the most raw bytes one piece holds: what is held in memory
// at once, and far below FAT32's 4 GiB file limit once compressed.
const PieceSize = 32 << 20

// MaxPieces bounds a save: 512 GiB of overwritten bytes, a manifest of a
// few MiB.
const MaxPieces = 16384

// maxManifest bounds the manifest read from the media.
const maxManifest = 8 << 20

// Format is the save format this code writes and reads.
const Format = 1

// ErrBadSave is wrapped by every reason a save on the media is refused.
var ErrBadSave = errors.New("the rollback save on the media is not usable")

// Region is bytes of the disk a migration overwrites.
type Region struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// Piece is one saved part of a region.
type Piece struct {
	Offset int64  `json:"offset"` // on the disk
	Length int64  `json:"length"` // raw bytes
	File   string `json:"file"`   // in the save's folder
	// StoredSize and StoredSHA256 are those of the file. The raw bytes are
	// what it decompresses to, checked by zstd's frame checksum and the
	// length: hashing them again would cost a pass over every byte saved.
	StoredSize   int64  `json:"stored_size"`
	StoredSHA256 string `json:"stored_sha256"`
}

// Manifest is a save's account of itself.
type Manifest struct {
	Format   int     `json:"format"`
	DiskSize int64   `json:"disk_size"` // of the disk the pieces came from
	Pieces   []Piece `json:"pieces"`    // in the order they are put back
}

// Bytes is the raw size of the save.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, p := range m.Pieces {
		n += p.Length
	}
	return n
}

// Tiles checks that the pieces are exactly regions, in order, cut in
// pieces as Save cuts them: a save read from the media writes nothing but
// what the migration overwrote, all of it, the table's bytes last.
func (m *Manifest) Tiles(regions []Region) error {
	i := 0
	for _, r := range regions {
		for off := r.Offset; off < r.Offset+r.Length; off += PieceSize {
			n := min(PieceSize, r.Offset+r.Length-off)
			if i >= len(m.Pieces) || m.Pieces[i].Offset != off || m.Pieces[i].Length != n {
				return fmt.Errorf("piece %d is not the %d bytes at %d the migration overwrote", i, n, off)
			}
			i++
		}
	}
	if i != len(m.Pieces) {
		return fmt.Errorf("%d pieces, the migration overwrote %d", len(m.Pieces), i)
	}
	return nil
}

// Size is the raw size of regions.
func Size(regions []Region) int64 {
	var n int64
	for _, r := range regions {
		n += r.Length
	}
	return n
}

// Pieces is how many pieces a save of regions takes.
func Pieces(regions []Region) int {
	n := 0
	for _, r := range regions {
		n += int((r.Length + PieceSize - 1) / PieceSize)
	}
	return n
}

// Save reads regions of disk (size bytes) and writes them into dir,
// piece by piece, each compressed, synced and renamed into place; the
// manifest is written last. The caller reads it back with Load, the page
// cache dropped first. progress, if set, is told the raw bytes saved so
// far.
func Save(disk io.ReaderAt, size int64, regions []Region, dir string, progress func(int64)) (*Manifest, error) {
	if err := checkRegions(regions, size); err != nil {
		return nil, err
	}
	if n := Pieces(regions); n > MaxPieces {
		return nil, fmt.Errorf("a save of %d pieces is more than the %d a save holds", n, MaxPieces)
	}
	if err := atomicfile.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(8<<20), zstd.WithEncoderCRC(true), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	m := &Manifest{Format: Format, DiskSize: size}
	raw := make([]byte, PieceSize)
	var done int64
	for _, r := range regions {
		for off := r.Offset; off < r.Offset+r.Length; off += PieceSize {
			n := min(PieceSize, r.Offset+r.Length-off)
			buf := raw[:n]
			if _, err := disk.ReadAt(buf, off); err != nil {
				return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
			}
			stored := enc.EncodeAll(buf, nil)
			p := Piece{Offset: off, Length: n, File: fmt.Sprintf("piece-%04d.zst", len(m.Pieces)),
				StoredSize: int64(len(stored)), StoredSHA256: sum(stored)}
			if err := atomicfile.WriteFile(filepath.Join(dir, p.File), stored, 0o644); err != nil {
				return nil, err
			}
			m.Pieces = append(m.Pieces, p)
			done += n
			if progress != nil {
				progress(done)
			}
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return m, atomicfile.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'), 0o644)
}

// Load reads and checks the save in dir for a disk of size bytes: the
// manifest, then every piece, read back and hashed, raw bytes included.
func Load(dir string, size int64) (*Manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSave, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSave, err)
	}
	if len(data) > maxManifest {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadSave, ManifestFile, maxManifest)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadSave, ManifestFile, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %d, this passeur reads %d", ErrBadSave, m.Format, Format)
	}
	if len(m.Pieces) > MaxPieces {
		return nil, fmt.Errorf("%w: %d pieces, more than %d", ErrBadSave, len(m.Pieces), MaxPieces)
	}
	if m.DiskSize != size {
		return nil, fmt.Errorf("%w: saved from a disk of %d bytes, this one has %d", ErrBadSave, m.DiskSize, size)
	}
	var regions []Region
	for i, p := range m.Pieces {
		if p.File != fmt.Sprintf("piece-%04d.zst", i) {
			return nil, fmt.Errorf("%w: piece %d is named %q", ErrBadSave, i, p.File)
		}
		if p.Length <= 0 || p.Length > PieceSize || p.StoredSize <= 0 || p.StoredSize > 2*PieceSize {
			return nil, fmt.Errorf("%w: piece %d has %d bytes (%d stored)", ErrBadSave, i, p.Length, p.StoredSize)
		}
		regions = append(regions, Region{p.Offset, p.Length})
	}
	if err := checkRegions(regions, size); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSave, err)
	}
	if _, err := readPieces(&m, dir, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSave, err)
	}
	return &m, nil
}

// Restore writes the save's pieces back on disk, in order, each checked
// again as it is read. skip tells which pieces are already back (a
// rollback taken up after a power cut); done is called after each piece
// is written and synced.
func Restore(disk io.WriterAt, sync func() error, m *Manifest, dir string, skip func(i int) bool, done func(i int, p Piece) error) error {
	_, err := readPieces(m, dir, func(i int, p Piece, raw []byte) error {
		if skip != nil && skip(i) {
			return nil
		}
		if _, err := disk.WriteAt(raw, p.Offset); err != nil {
			return fmt.Errorf("write %d bytes at %d: %w", len(raw), p.Offset, err)
		}
		if err := sync(); err != nil {
			return err
		}
		if done != nil {
			return done(i, p)
		}
		return nil
	})
	return err
}

// Read returns the saved raw bytes of the disk at [off, off+n), which one
// piece must hold, checked against its hashes.
func (m *Manifest) Read(dir string, off, n int64) ([]byte, error) {
	for i, p := range m.Pieces {
		if off < p.Offset || n > p.Length-(off-p.Offset) {
			continue
		}
		one := &Manifest{Format: m.Format, DiskSize: m.DiskSize, Pieces: []Piece{p}}
		var raw []byte
		if _, err := readPieces(one, dir, func(_ int, _ Piece, b []byte) error { raw = b; return nil }); err != nil {
			return nil, fmt.Errorf("%w: piece %d: %w", ErrBadSave, i, err)
		}
		return raw[off-p.Offset : off-p.Offset+n], nil
	}
	return nil, fmt.Errorf("%w: no piece holds the %d bytes at %d", ErrBadSave, n, off)
}

// readPieces reads every piece of m from dir, checks its stored and raw
// hashes and lengths, and hands the raw bytes to each (if set).
func readPieces(m *Manifest, dir string, each func(int, Piece, []byte) error) (int64, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*PieceSize))
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	var total int64
	for i, p := range m.Pieces {
		stored, err := readFile(filepath.Join(dir, p.File), p.StoredSize)
		if err != nil {
			return total, fmt.Errorf("piece %d: %w", i, err)
		}
		if sum(stored) != p.StoredSHA256 {
			return total, fmt.Errorf("piece %d (%s) as stored does not match its hash", i, p.File)
		}
		raw, err := dec.DecodeAll(stored, make([]byte, 0, p.Length))
		if err != nil || int64(len(raw)) != p.Length {
			return total, fmt.Errorf("piece %d (%s) does not decompress to its %d bytes (%v)", i, p.File, p.Length, err)
		}
		if each != nil {
			if err := each(i, p, raw); err != nil {
				return total, err
			}
		}
		total += p.Length
	}
	return total, nil
}

// readFile reads a file that must be exactly n bytes.
func readFile(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, n+1))
	if err == nil && int64(len(data)) != n {
		err = fmt.Errorf("%s has %d bytes, %d saved", filepath.Base(path), len(data), n)
	}
	return data, err
}

// checkRegions checks that regions lie on the disk and do not overlap.
func checkRegions(regions []Region, size int64) error {
	sorted := slices.Clone(regions)
	slices.SortFunc(sorted, func(a, b Region) int { return int(a.Offset - b.Offset) })
	for i, r := range sorted {
		if r.Offset < 0 || r.Length <= 0 || r.Offset > size || r.Length > size-r.Offset {
			return fmt.Errorf("region %d+%d is not on the disk of %d bytes", r.Offset, r.Length, size)
		}
		if i > 0 && sorted[i-1].Length > r.Offset-sorted[i-1].Offset {
			return fmt.Errorf("regions %d+%d and %d+%d overlap", sorted[i-1].Offset, sorted[i-1].Length, r.Offset, r.Length)
		}
	}
	return nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
