package ptable

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Bounds on a GPT's entry array, checked before it is allocated: entry
// sizes are 128 × 2^n by the specification and every tool writes 128-byte
// entries in a 16 KiB array.
const (
	maxEntrySize  = 4096
	maxEntryArray = 1 << 20
)

// gptHeader is the part of a GPT header that locates the table.
type gptHeader struct {
	alternate, firstUsable, lastUsable uint64 // LBAs
	entriesAt                          uint64 // LBA
	count, entrySize, entriesCRC       uint32
	disk                               string // GUID
}

// readGPT reads the primary GPT header at LBA 1 and its entries. It returns
// nil, nil when there is no GPT signature, and an error wrapping
// ErrInvalidTable when the header or the entries fail their CRC or their
// bounds (a damaged GPT is not silently taken as absent).
func readGPT(d disk) (*Table, error) {
	sector := make([]byte, d.sectorSize)
	if _, err := d.r.ReadAt(sector, int64(d.sectorSize)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if !bytes.Equal(sector[0:8], []byte("EFI PART")) {
		return nil, nil
	}
	h, err := d.gptHeader(sector)
	if err != nil {
		return nil, fmt.Errorf("%w: GPT header at LBA 1: %w", ErrInvalidTable, err)
	}
	ents := make([]byte, int(h.count)*int(h.entrySize)) // bounded by gptHeader
	if _, err := d.r.ReadAt(ents, int64(h.entriesAt*d.sectorSize)); err != nil {
		return nil, fmt.Errorf("read GPT entries at LBA %d: %w", h.entriesAt, err)
	}
	if sum := crc32.ChecksumIEEE(ents); sum != h.entriesCRC {
		return nil, fmt.Errorf("%w: GPT entry array CRC mismatch (%08x, the header says %08x)", ErrInvalidTable, sum, h.entriesCRC)
	}
	t := &Table{Type: "gpt", ID: h.disk}
	for i := range int(h.count) {
		e := ents[i*int(h.entrySize) : (i+1)*int(h.entrySize)]
		if bytes.Equal(e[0:16], make([]byte, 16)) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		if first > last {
			return nil, fmt.Errorf("%w: GPT partition %d ends at LBA %d, before it starts at %d", ErrInvalidTable, i+1, last, first)
		}
		if first < h.firstUsable || last > h.lastUsable {
			return nil, fmt.Errorf("%w: GPT partition %d at LBAs %d-%d leaves the usable LBAs %d-%d",
				ErrInvalidTable, i+1, first, last, h.firstUsable, h.lastUsable)
		}
		t.Partitions = append(t.Partitions, Entry{
			Number:  i + 1,
			Start:   first,
			Sectors: last - first + 1,
			Type:    guid(e[0:16]),
			UUID:    guid(e[16:32]),
			Name:    utf16Name(e[56:128]),
		})
	}
	if err := overlap(t.Partitions); err != nil {
		return nil, err
	}
	return t, nil
}

// gptHeader checks the primary header in sector against its CRC and the
// disk: the header at LBA 1, then its entry array, the usable LBAs and the
// alternate header, in that order, all inside the disk.
func (d disk) gptHeader(sector []byte) (gptHeader, error) {
	hsize := le.Uint32(sector[12:])
	if hsize < 92 || uint64(hsize) > d.sectorSize {
		return gptHeader{}, fmt.Errorf("header size %d (92 to %d)", hsize, d.sectorSize)
	}
	hdr := bytes.Clone(sector[:hsize])
	want := le.Uint32(hdr[16:])
	clear(hdr[16:20])
	if sum := crc32.ChecksumIEEE(hdr); sum != want {
		return gptHeader{}, fmt.Errorf("header CRC mismatch (%08x, the header says %08x)", sum, want)
	}
	h := gptHeader{
		alternate:   le.Uint64(hdr[32:]),
		firstUsable: le.Uint64(hdr[40:]),
		lastUsable:  le.Uint64(hdr[48:]),
		entriesAt:   le.Uint64(hdr[72:]),
		count:       le.Uint32(hdr[80:]),
		entrySize:   le.Uint32(hdr[84:]),
		entriesCRC:  le.Uint32(hdr[88:]),
		disk:        guid(hdr[56:72]),
	}
	if my := le.Uint64(hdr[24:]); my != 1 {
		return gptHeader{}, fmt.Errorf("the header says it lies at LBA %d", my)
	}
	if h.entrySize < 128 || h.entrySize%128 != 0 || h.entrySize > maxEntrySize {
		return gptHeader{}, fmt.Errorf("entries of %d bytes (a multiple of 128 up to %d)", h.entrySize, maxEntrySize)
	}
	size := uint64(h.count) * uint64(h.entrySize)
	if size > maxEntryArray {
		return gptHeader{}, fmt.Errorf("%d entries of %d bytes, more than %d bytes", h.count, h.entrySize, maxEntryArray)
	}
	sectors := (size + d.sectorSize - 1) / d.sectorSize
	switch {
	case h.alternate <= 1 || h.alternate >= d.sectors:
		return gptHeader{}, fmt.Errorf("alternate header at LBA %d, outside LBAs 2 to %d of the disk", h.alternate, max(d.sectors, 1)-1)
	case h.firstUsable > h.lastUsable || h.firstUsable < 2 || h.lastUsable >= h.alternate:
		return gptHeader{}, fmt.Errorf("usable LBAs %d-%d, not between the header at 1 and the alternate at %d", h.firstUsable, h.lastUsable, h.alternate)
	case h.entriesAt < 2 || h.entriesAt > h.firstUsable || sectors > h.firstUsable-h.entriesAt:
		return gptHeader{}, fmt.Errorf("entry array at LBAs %d+%d, not between the header at 1 and the first usable LBA %d", h.entriesAt, sectors, h.firstUsable)
	}
	return h, nil
}

// guid formats a GUID stored in GPT's mixed-endian layout in lower case,
// as blkid prints PARTUUID (sfdisk prints upper case); compare them
// case-insensitively.
func guid(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := le.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
