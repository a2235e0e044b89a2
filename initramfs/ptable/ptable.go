// Package ptable reads partition tables (MBR "dos" and GPT) from an
// io.ReaderAt: their type, identifier, and each entry's PARTUUID, type and
// name, in the forms blkid and sfdisk print them.
package ptable

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Table is a partition table found on a disk.
type Table struct {
	Type       string  `json:"type"` // "dos" or "gpt", as sfdisk names them
	ID         string  `json:"id"`   // disk identifier: GPT disk GUID, or MBR signature as 8 hex digits
	Partitions []Entry `json:"partitions"`
}

// Entry is one partition of a table.
type Entry struct {
	Number   int    `json:"number"`         // 1-based, as the kernel numbers it
	Start    uint64 `json:"start"`          // first sector, in logical sectors
	Sectors  uint64 `json:"sectors"`        // length, in logical sectors
	Type     string `json:"type"`           // GPT type GUID, or MBR type in hex, as sfdisk prints them
	UUID     string `json:"uuid"`           // PARTUUID
	Name     string `json:"name,omitempty"` // GPT partition name (PARTLABEL)
	Bootable bool   `json:"bootable,omitempty"`
}

// ErrInvalidTable is wrapped by every reason a table found on a disk is
// refused: a damaged header, a field out of bounds, a partition outside
// the disk or overlapping another. The disk's content is then unknown,
// neither blank nor partitioned.
var ErrInvalidTable = errors.New("invalid partition table")

var le = binary.LittleEndian

// disk is what a table is read from: its bytes and its size in logical
// sectors.
type disk struct {
	r          io.ReaderAt
	sectorSize uint64
	sectors    uint64
}

// Read returns the partition table on r, or nil if there is none. A GPT is
// looked for at LBA 1 with the given logical sector size. The protective MBR
// of a GPT disk is not reported as a dos table. Every field read is checked
// against the disk's size (r's Size method, or its end if r is a file)
// before it is used; a table that does not hold is an error wrapping
// ErrInvalidTable.
func Read(r io.ReaderAt, sectorSize int) (*Table, error) {
	if sectorSize < 512 || sectorSize > 64<<10 || sectorSize&(sectorSize-1) != 0 {
		return nil, fmt.Errorf("read partition table: logical sectors of %d bytes (a power of two from 512 to 65536)", sectorSize)
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, nil
	}
	size, err := sizeOf(r)
	if err != nil {
		return nil, err
	}
	d := disk{r: r, sectorSize: uint64(sectorSize), sectors: uint64(size) / uint64(sectorSize)}
	if t, err := readGPT(d); t != nil || err != nil {
		return t, err
	}
	t := readMBR(mbr)
	if t == nil {
		return nil, nil
	}
	if t.protective() {
		return nil, fmt.Errorf("%w: a protective MBR (type ee) but no GPT header at LBA 1 of %d-byte sectors", ErrInvalidTable, sectorSize)
	}
	if err := d.checkPrimaries(t.Partitions); err != nil {
		return nil, err
	}
	logical, err := readLogical(d, t)
	if err != nil {
		return nil, err
	}
	t.Partitions = append(t.Partitions, logical...)
	return t, nil
}

// sizeOf returns the size in bytes of the disk r reads: what its Size
// method says (bytes.Reader, io.SectionReader, an Image's View), or where
// its end is when it is a file or a block device.
func sizeOf(r io.ReaderAt) (int64, error) {
	switch d := r.(type) {
	case interface{ Size() int64 }:
		return d.Size(), nil
	case io.Seeker:
		at, err := d.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, fmt.Errorf("size of the disk: %w", err)
		}
		end, err := d.Seek(0, io.SeekEnd)
		if _, err2 := d.Seek(at, io.SeekStart); err == nil {
			err = err2
		}
		if err != nil {
			return 0, fmt.Errorf("size of the disk: %w", err)
		}
		return end, nil
	}
	return 0, fmt.Errorf("size of the disk: a %T has neither a Size method nor an end to seek to", r)
}

// maxLogical bounds the extended boot records read: a chain read from a
// disk may loop, run on, or hold empty records.
const maxLogical = 128

// readLogical follows the chain of extended boot records of the first
// extended partition of t and returns its logical partitions, numbered
// from 5 as the kernel numbers them. A broken link ends the chain: what
// was read stands. A logical partition that leaves the extended one, or
// overlaps another's record or extent, makes the table invalid.
func readLogical(d disk, t *Table) ([]Entry, error) {
	var ext *Entry
	for i, e := range t.Partitions {
		if e.Type == "5" || e.Type == "f" || e.Type == "85" {
			ext = &t.Partitions[i]
			break
		}
	}
	if ext == nil {
		return nil, nil
	}
	end := ext.Start + ext.Sectors // checked inside the disk
	var out []Entry
	var spans [][2]uint64 // each logical with its record: [record, end)
	seen := map[uint64]bool{}
	ebr := make([]byte, 512)
	for at := ext.Start; len(seen) < maxLogical && !seen[at] && at < end; {
		seen[at] = true
		if _, err := d.r.ReadAt(ebr, int64(at*d.sectorSize)); err != nil || ebr[510] != 0x55 || ebr[511] != 0xAA {
			break
		}
		e, next := ebr[446:462], ebr[462:478]
		if typ, start, n := e[4], uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:])); typ != 0 && n != 0 {
			num := 5 + len(out)
			if start == 0 || at+start+n > end {
				return nil, fmt.Errorf("%w: logical partition %d at sectors %d+%d (its record at %d) leaves the extended partition %d+%d",
					ErrInvalidTable, num, at+start, n, at, ext.Start, ext.Sectors)
			}
			out = append(out, Entry{
				Number:   num,
				Start:    at + start,
				Sectors:  n,
				Type:     fmt.Sprintf("%x", typ),
				UUID:     fmt.Sprintf("%s-%02x", t.ID, num),
				Bootable: e[0] == 0x80,
			})
			spans = append(spans, [2]uint64{at, at + start + n})
		}
		if next[4] == 0 || le.Uint32(next[8:]) == 0 {
			break
		}
		at = ext.Start + uint64(le.Uint32(next[8:]))
	}
	slices.SortFunc(spans, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	for i := 1; i < len(spans); i++ {
		if spans[i-1][1] > spans[i][0] {
			return nil, fmt.Errorf("%w: the logical partition ending at sector %d overlaps the extended boot record at %d",
				ErrInvalidTable, spans[i-1][1], spans[i][0])
		}
	}
	return out, nil
}

// readMBR decodes the four primary entries of an MBR. It returns nil when
// the sector is a boot sector of a filesystem rather than a table (entries
// with impossible status bytes).
func readMBR(mbr []byte) *Table {
	t := &Table{Type: "dos", ID: fmt.Sprintf("%08x", le.Uint32(mbr[440:]))}
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return nil
		}
		typ, start, n := e[4], le.Uint32(e[8:]), le.Uint32(e[12:])
		if typ == 0 || n == 0 {
			continue
		}
		t.Partitions = append(t.Partitions, Entry{
			Number:   i + 1,
			Start:    uint64(start),
			Sectors:  uint64(n),
			Type:     fmt.Sprintf("%x", typ),
			UUID:     fmt.Sprintf("%s-%02x", t.ID, i+1),
			Bootable: e[0] == 0x80,
		})
	}
	if len(t.Partitions) == 0 {
		return nil
	}
	return t
}

// protective reports whether an MBR holds a GPT's protective entry.
func (t *Table) protective() bool {
	return slices.ContainsFunc(t.Partitions, func(e Entry) bool { return e.Type == "ee" })
}

// checkPrimaries refuses primary partitions that cover the MBR, run past
// the disk's end or overlap one another (the extended partition counts as
// one extent).
func (d disk) checkPrimaries(ps []Entry) error {
	for _, p := range ps {
		if p.Start == 0 || p.Start >= d.sectors || p.Sectors > d.sectors-p.Start {
			return fmt.Errorf("%w: MBR partition %d at sectors %d+%d leaves sectors 1 to %d of the disk",
				ErrInvalidTable, p.Number, p.Start, p.Sectors, max(d.sectors, 1)-1)
		}
	}
	return overlap(ps)
}

// overlap refuses entries whose extents overlap (checked inside the disk
// first, so that no end overflows).
func overlap(es []Entry) error {
	sorted := slices.Clone(es)
	slices.SortFunc(sorted, func(a, b Entry) int { return cmp.Compare(a.Start, b.Start) })
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; a.Start+a.Sectors > b.Start {
			return fmt.Errorf("%w: partitions %d (sectors %d+%d) and %d (sectors %d+%d) overlap",
				ErrInvalidTable, a.Number, a.Start, a.Sectors, b.Number, b.Start, b.Sectors)
		}
	}
	return nil
}
