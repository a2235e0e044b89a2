package ptable

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Geometry is the disk a table is laid on.
type Geometry struct {
	Size       int64 // bytes
	SectorSize int   // logical sector size: 512 or 4096
}

// Write is bytes to write at an offset of the disk.
type Write struct {
	Offset int64
	Data   []byte
}

// Image is a partition table serialized to the bytes it puts on a disk, in
// disk order: everything a table write does, known before it is done.
type Image []Write

// ErrTable is wrapped by every reason a table cannot be written as asked.
var ErrTable = errors.New("partition table cannot hold the layout")

// GPT's entry array: 128 entries of 128 bytes, as every tool writes it.
const (
	gptEntries   = 128
	gptEntrySize = 128
)

// Usable returns the byte range [first, end) that partitions may occupy
// under a table of type typ ("gpt" or "dos") on a disk of geometry g: a GPT
// keeps its header and entries at both ends, an MBR only its first sector.
func Usable(typ string, g Geometry) (first, end int64) {
	s := int64(g.SectorSize)
	if typ == "gpt" {
		ents := int64(gptEntries*gptEntrySize) / s
		return (2 + ents) * s, (g.Size/s - 1 - ents) * s
	}
	return s, g.Size / s * s
}

// Encode serializes t for a disk of geometry g, checks that every entry
// can be represented (GUIDs, sizes, counts, overlaps), reads the bytes back
// with Read and compares: an Image that Encode returns says, byte for byte,
// what the table will be. Start and Sectors are in logical sectors of g.
//
// A "dos" image also zeroes both GPT headers' sectors where no partition
// lies, so that no stale GPT outlives the MBR for the kernel or blkid.
func (t *Table) Encode(g Geometry) (Image, error) {
	if g.SectorSize != 512 && g.SectorSize != 4096 {
		return nil, fmt.Errorf("%w: logical sectors of %d bytes", ErrTable, g.SectorSize)
	}
	if err := t.checkExtents(g); err != nil {
		return nil, err
	}
	var im Image
	var err error
	switch t.Type {
	case "gpt":
		im, err = t.encodeGPT(g)
	case "dos":
		im, err = t.encodeDOS(g)
	default:
		return nil, fmt.Errorf("%w: table type %q (gpt or dos)", ErrTable, t.Type)
	}
	if err != nil {
		return nil, err
	}
	back, err := Read(im.View(g.Size), g.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("%w: the serialized table does not read back: %w", ErrTable, err)
	}
	if err := t.same(back); err != nil {
		return nil, fmt.Errorf("%w: the serialized table reads back otherwise: %w", ErrTable, err)
	}
	return im, nil
}

// checkExtents checks that the entries lie in the usable range, none
// overlapping another.
func (t *Table) checkExtents(g Geometry) error {
	first, end := Usable(t.Type, g)
	s := int64(g.SectorSize)
	lo, hi := uint64(max(first, 0)/s), uint64(max(end, 0)/s) // in sectors, so that no bound overflows
	sorted := slices.Clone(t.Partitions)
	slices.SortFunc(sorted, func(a, b Entry) int { return cmp.Compare(a.Start, b.Start) })
	for i, e := range sorted {
		switch {
		case e.Sectors == 0:
			return fmt.Errorf("%w: partition %d is empty", ErrTable, e.Number)
		case e.Start < lo || e.Start > hi || e.Sectors > hi-e.Start:
			return fmt.Errorf("%w: partition %d at sectors %d+%d lies outside the %s's usable bytes [%d, %d) of a disk of %d bytes",
				ErrTable, e.Number, e.Start, e.Sectors, t.Type, first, end, g.Size)
		case i > 0 && sorted[i-1].Start+sorted[i-1].Sectors > e.Start:
			return fmt.Errorf("%w: partitions %d and %d overlap", ErrTable, sorted[i-1].Number, e.Number)
		}
	}
	return nil
}

func (t *Table) encodeGPT(g Geometry) (Image, error) {
	if len(t.Partitions) > gptEntries {
		return nil, fmt.Errorf("%w: %d partitions, a GPT holds %d", ErrTable, len(t.Partitions), gptEntries)
	}
	s := int64(g.SectorSize)
	ents := make([]byte, gptEntries*gptEntrySize)
	for _, e := range t.Partitions {
		if e.Number < 1 || e.Number > gptEntries {
			return nil, fmt.Errorf("%w: GPT entry number %d", ErrTable, e.Number)
		}
		b := ents[(e.Number-1)*gptEntrySize : e.Number*gptEntrySize]
		if !bytes.Equal(b[0:16], make([]byte, 16)) {
			return nil, fmt.Errorf("%w: GPT entry %d given twice", ErrTable, e.Number)
		}
		typ, err := guidBytes(e.Type)
		if err != nil {
			return nil, fmt.Errorf("%w: partition %d type: %w", ErrTable, e.Number, err)
		}
		uniq, err := guidBytes(e.UUID)
		if err != nil {
			return nil, fmt.Errorf("%w: partition %d PARTUUID: %w", ErrTable, e.Number, err)
		}
		if bytes.Equal(typ, make([]byte, 16)) {
			return nil, fmt.Errorf("%w: partition %d has the unused type", ErrTable, e.Number)
		}
		name := utf16.Encode([]rune(e.Name))
		if len(name) > 36 {
			return nil, fmt.Errorf("%w: partition %d name %q is longer than 36 UTF-16 units", ErrTable, e.Number, e.Name)
		}
		copy(b[0:], typ)
		copy(b[16:], uniq)
		le.PutUint64(b[32:], e.Start)
		le.PutUint64(b[40:], e.Start+e.Sectors-1)
		for i, u := range name {
			le.PutUint16(b[56+2*i:], u)
		}
	}
	disk, err := guidBytes(t.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: disk GUID: %w", ErrTable, err)
	}
	last := g.Size/s - 1
	entSectors := int64(len(ents)) / s
	first, end := Usable("gpt", g)
	header := func(my, alt, entriesAt int64) []byte {
		h := make([]byte, s)
		copy(h, "EFI PART")
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], 92)
		le.PutUint64(h[24:], uint64(my))
		le.PutUint64(h[32:], uint64(alt))
		le.PutUint64(h[40:], uint64(first/s))
		le.PutUint64(h[48:], uint64(end/s-1))
		copy(h[56:], disk)
		le.PutUint64(h[72:], uint64(entriesAt))
		le.PutUint32(h[80:], gptEntries)
		le.PutUint32(h[84:], gptEntrySize)
		le.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	pmbr := make([]byte, s)
	e := pmbr[446:462]
	copy(e[1:4], []byte{0x00, 0x02, 0x00})
	e[4] = 0xEE
	copy(e[5:8], []byte{0xFF, 0xFF, 0xFF})
	le.PutUint32(e[8:], 1)
	le.PutUint32(e[12:], uint32(min(last, 0xFFFFFFFF)))
	pmbr[510], pmbr[511] = 0x55, 0xAA
	return Image{
		{0, pmbr},
		{s, header(1, last, 2)},
		{2 * s, ents},
		{(last - entSectors) * s, slices.Clone(ents)},
		{last * s, header(last, 1, last-entSectors)},
	}, nil
}

func (t *Table) encodeDOS(g Geometry) (Image, error) {
	if len(t.Partitions) > 4 {
		return nil, fmt.Errorf("%w: %d partitions, an MBR holds 4 primary partitions", ErrTable, len(t.Partitions))
	}
	id, err := strconv.ParseUint(t.ID, 16, 32)
	if err != nil || len(t.ID) != 8 {
		return nil, fmt.Errorf("%w: MBR disk identifier %q is not 8 hex digits", ErrTable, t.ID)
	}
	s := int64(g.SectorSize)
	mbr := make([]byte, s)
	le.PutUint32(mbr[440:], uint32(id))
	for _, p := range t.Partitions {
		if p.Number < 1 || p.Number > 4 {
			return nil, fmt.Errorf("%w: MBR entry number %d (primary partitions are 1 to 4)", ErrTable, p.Number)
		}
		typ, err := strconv.ParseUint(p.Type, 16, 8)
		if err != nil || typ == 0 || typ == 0xEE || typ == 0x05 || typ == 0x0F {
			return nil, fmt.Errorf("%w: partition %d: MBR type %q", ErrTable, p.Number, p.Type)
		}
		if p.Start > 0xFFFFFFFF || p.Sectors > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: partition %d at sectors %d+%d is beyond an MBR's 2^32 sectors", ErrTable, p.Number, p.Start, p.Sectors)
		}
		e := mbr[446+16*(p.Number-1) : 446+16*p.Number]
		if e[4] != 0 {
			return nil, fmt.Errorf("%w: MBR entry %d given twice", ErrTable, p.Number)
		}
		if p.Bootable {
			e[0] = 0x80
		}
		copy(e[1:4], chs(p.Start))
		e[4] = byte(typ)
		copy(e[5:8], chs(p.Start+p.Sectors-1))
		le.PutUint32(e[8:], uint32(p.Start))
		le.PutUint32(e[12:], uint32(p.Sectors))
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	im := Image{{0, mbr}}
	last := g.Size/s - 1
	for _, lba := range []int64{1, last} { // where GPT headers would be
		if lba > 0 && !t.covers(uint64(lba)) {
			im = append(im, Write{lba * s, make([]byte, s)})
		}
	}
	return im, nil
}

// covers reports whether a partition of t holds sector lba.
func (t *Table) covers(lba uint64) bool {
	for _, p := range t.Partitions {
		if lba >= p.Start && lba < p.Start+p.Sectors {
			return true
		}
	}
	return false
}

// chs is the cylinder/head/sector address of lba in the 255-head,
// 63-sector geometry fdisk uses, or the "beyond" marker past cylinder 1023.
func chs(lba uint64) []byte {
	const heads, sectors = 255, 63
	c, h, sec := lba/(heads*sectors), lba/sectors%heads, lba%sectors+1
	if c > 1023 {
		return []byte{0xFE, 0xFF, 0xFF}
	}
	return []byte{byte(h), byte(sec) | byte(c>>2)&0xC0, byte(c)}
}

// same compares t with a table read back, as Read reports it.
func (t *Table) same(back *Table) error {
	if back == nil || back.Type != t.Type || !strings.EqualFold(back.ID, t.ID) {
		return fmt.Errorf("table %+v, want %s %s", back, t.Type, t.ID)
	}
	if len(back.Partitions) != len(t.Partitions) {
		return fmt.Errorf("%d partitions, want %d", len(back.Partitions), len(t.Partitions))
	}
	want := slices.Clone(t.Partitions)
	slices.SortFunc(want, func(a, b Entry) int { return a.Number - b.Number })
	for i, w := range want {
		b := back.Partitions[i]
		typ := strings.TrimLeft(strings.ToLower(w.Type), "0")
		if t.Type == "gpt" {
			typ = strings.ToLower(w.Type)
		}
		uuid := strings.ToLower(w.UUID)
		if t.Type == "dos" {
			uuid = b.UUID // derived from the disk identifier and number
		}
		if b.Number != w.Number || b.Start != w.Start || b.Sectors != w.Sectors || b.Type != typ ||
			b.UUID != uuid || b.Name != w.Name || b.Bootable != w.Bootable {
			return fmt.Errorf("partition %d reads back as %+v, want %+v", w.Number, b, w)
		}
	}
	return nil
}

// guidBytes encodes a GUID in GPT's mixed-endian layout.
func guidBytes(s string) ([]byte, error) {
	h := strings.ReplaceAll(s, "-", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, fmt.Errorf("%q is not a GUID", s)
	}
	slices.Reverse(b[0:4])
	slices.Reverse(b[4:6])
	slices.Reverse(b[6:8])
	return b, nil
}

// SHA256 is the hash of the image's offsets and bytes: what a job records
// of the table it will write.
func (im Image) SHA256() string {
	h := sha256.New()
	for _, w := range im {
		fmt.Fprintf(h, "%d+%d\n", w.Offset, len(w.Data))
		h.Write(w.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Ranges lists the byte ranges the image writes, [offset, end).
func (im Image) Ranges() [][2]int64 {
	var out [][2]int64
	for _, w := range im {
		out = append(out, [2]int64{w.Offset, w.Offset + int64(len(w.Data))})
	}
	return out
}

// WriteTo writes the image's bytes on w, first to last.
func (im Image) WriteTo(w io.WriterAt) error {
	for _, x := range im {
		if _, err := w.WriteAt(x.Data, x.Offset); err != nil {
			return fmt.Errorf("write %d bytes at %d: %w", len(x.Data), x.Offset, err)
		}
	}
	return nil
}

// View is a disk of size bytes holding only the image (zeros elsewhere),
// to read the table back before anything is written.
func (im Image) View(size int64) io.ReaderAt { return view{im, size} }

type view struct {
	im   Image
	size int64
}

// Size is the size of the disk the view stands for.
func (v view) Size() int64 { return v.size }

func (v view) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at offset %d", off)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := v.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	for _, w := range v.im {
		lo, hi := max(off, w.Offset), min(off+int64(n), w.Offset+int64(len(w.Data)))
		if lo < hi {
			copy(p[lo-off:hi-off], w.Data[lo-w.Offset:hi-w.Offset])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
