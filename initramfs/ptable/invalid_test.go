package ptable

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The disk the crafted tables lie on: 64 MiB of 512-byte sectors.
const (
	craftSize    = 64 << 20
	craftSectors = craftSize / 512
)

// craftBase is the GPT every crafted one starts from: two partitions,
// laid by Encode (LBAs: entries 2-33, usable 34-131038, backup entries
// 131039-131070, alternate header 131071).
var craftBase = &Table{Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{
	{Number: 1, Start: 2048, Sectors: 4096, Type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a001", Name: "esp"},
	{Number: 2, Start: 8192, Sectors: 8192, Type: "0fc63daf-8483-4772-8e79-3d69d8477de4", UUID: "0b6f4a56-2222-4e0e-8a55-0d7e3bd3a002", Name: "data"},
}}

// gptFields are the fields of a primary GPT header a crafted table edits,
// and its entry array.
type gptFields struct {
	headerSize, count, entrySize                      uint32
	my, alternate, firstUsable, lastUsable, entriesAt uint64
	entries                                           []byte // laid at entriesAt, its CRC in the header
}

// craftGPT lays craftBase with Encode, lets edit change the primary
// header's fields and entries, and computes both CRCs again: a table a
// reader checking only CRCs takes as intact. The image's writes are the
// entries, the protective MBR, the header, the backup entries and the
// backup header.
func craftGPT(t *testing.T, edit func(h *gptFields)) Image {
	t.Helper()
	im, err := craftBase.Encode(Geometry{Size: craftSize, SectorSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	hdr := bytes.Clone(im[1].Data)
	h := gptFields{
		headerSize: le.Uint32(hdr[12:]), count: le.Uint32(hdr[80:]), entrySize: le.Uint32(hdr[84:]),
		my: le.Uint64(hdr[24:]), alternate: le.Uint64(hdr[32:]), firstUsable: le.Uint64(hdr[40:]), lastUsable: le.Uint64(hdr[48:]),
		entriesAt: le.Uint64(hdr[72:]), entries: bytes.Clone(im[2].Data),
	}
	edit(&h)
	le.PutUint32(hdr[12:], h.headerSize)
	le.PutUint64(hdr[24:], h.my)
	le.PutUint64(hdr[32:], h.alternate)
	le.PutUint64(hdr[40:], h.firstUsable)
	le.PutUint64(hdr[48:], h.lastUsable)
	le.PutUint64(hdr[72:], h.entriesAt)
	le.PutUint32(hdr[80:], h.count)
	le.PutUint32(hdr[84:], h.entrySize)
	le.PutUint32(hdr[88:], crc32.ChecksumIEEE(h.entries))
	clear(hdr[16:20])
	le.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:min(max(h.headerSize, 92), 512)]))
	var out Image
	if h.entriesAt < craftSectors { // first, so that the MBR and the headers lie over it
		out = append(out, Write{int64(h.entriesAt) * 512, h.entries})
	}
	return append(out, im[0], Write{512, hdr}, im[3], im[4])
}

// setEntry sets the first and last LBA of GPT entry i (from 0).
func setEntry(ents []byte, i int, first, last uint64) {
	le.PutUint64(ents[i*128+32:], first)
	le.PutUint64(ents[i*128+40:], last)
}

// readBounded reads r with Read and fails the test if that allocates
// more than 4 MiB or reads more than 2 MiB.
func readBounded(t *testing.T, r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	t.Helper()
	c := &countingReader{r: r, size: size}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tab, err := Read(c, sectorSize)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("Read allocated %d bytes", n)
	}
	if c.bytes > 2<<20 {
		t.Errorf("Read asked for %d bytes", c.bytes)
	}
	return tab, err
}

// TestInvalidGPT: a GPT whose CRCs hold but whose fields do not is refused
// by name, with the field, without reading or allocating more than the
// bounds.
func TestInvalidGPT(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(h *gptFields)
		want string
	}{
		{"4096 entries of 0xFFFFFF80 bytes", func(h *gptFields) { h.count, h.entrySize = 4096, 0xFFFFFF80 }, "entries of 4294967168 bytes"},
		{"entries of 129 bytes", func(h *gptFields) { h.entrySize = 129 }, "entries of 129 bytes"},
		{"entries of 64 bytes", func(h *gptFields) { h.entrySize = 64 }, "entries of 64 bytes"},
		{"entries of 8 KiB", func(h *gptFields) { h.entrySize = 8192 }, "entries of 8192 bytes"},
		{"an array of 2 MiB", func(h *gptFields) { h.count = 16384 }, "more than 1048576 bytes"},
		{"4096 entries of 4 KiB", func(h *gptFields) { h.count, h.entrySize = 4096, 4096 }, "more than 1048576 bytes"},
		{"2^32 entries of 4 KiB", func(h *gptFields) { h.count, h.entrySize = 0xFFFFFFFF, 4096 }, "more than 1048576 bytes"},
		{"header size 91", func(h *gptFields) { h.headerSize = 91 }, "header size 91"},
		{"header size 513", func(h *gptFields) { h.headerSize = 513 }, "header size 513"},
		{"header size 2^32-1", func(h *gptFields) { h.headerSize = 0xFFFFFFFF }, "header size 4294967295"},
		{"header elsewhere than LBA 1", func(h *gptFields) { h.my = 2 }, "lies at LBA 2"},
		{"alternate header past the disk", func(h *gptFields) { h.alternate = craftSectors }, "alternate header at LBA 131072"},
		{"alternate header at 2^63", func(h *gptFields) { h.alternate = 1 << 63 }, "alternate header at LBA"},
		{"alternate header at LBA 1", func(h *gptFields) { h.alternate = 1 }, "alternate header at LBA 1,"},
		{"last usable LBA past the disk", func(h *gptFields) { h.lastUsable = 1 << 40 }, "usable LBAs 34-1099511627776"},
		{"last usable LBA on the alternate header", func(h *gptFields) { h.lastUsable = craftSectors - 1 }, "usable LBAs"},
		{"first usable after the last", func(h *gptFields) { h.firstUsable, h.lastUsable = 90000, 80000 }, "usable LBAs 90000-80000"},
		{"first usable LBA on the header", func(h *gptFields) { h.firstUsable = 1 }, "usable LBAs 1-"},
		{"entry array on the MBR", func(h *gptFields) { h.entriesAt = 0 }, "entry array at LBAs 0+32"},
		{"entry array on the header", func(h *gptFields) { h.entriesAt = 1 }, "entry array at LBAs 1+32"},
		{"entry array in the usable LBAs", func(h *gptFields) { h.entriesAt = 2048 }, "entry array at LBAs 2048+32"},
		{"entry array past the disk", func(h *gptFields) { h.entriesAt = craftSectors - 1 }, "entry array at LBAs 131071+32"},
		{"entry array at 2^60", func(h *gptFields) { h.entriesAt = 1 << 60 }, "entry array at LBAs 1152921504606846976+32"},
		{"entry array into the first usable LBA", func(h *gptFields) { h.entriesAt = 3 }, "entry array at LBAs 3+32"},
		{"partition ending before it starts", func(h *gptFields) { setEntry(h.entries, 0, 5000, 4999) }, "partition 1 ends at LBA 4999, before it starts at 5000"},
		{"partition on the entry array", func(h *gptFields) { setEntry(h.entries, 0, 20, 4000) }, "partition 1 at LBAs 20-4000 leaves the usable LBAs 34-131038"},
		{"partition on the backup entries", func(h *gptFields) { setEntry(h.entries, 1, 8192, craftSectors-33) }, "partition 2 at LBAs 8192-131039"},
		{"partition past the disk", func(h *gptFields) { setEntry(h.entries, 1, 8192, 1<<62) }, "partition 2 at LBAs 8192-4611686018427387904"},
		{"partition to LBA 2^64-1", func(h *gptFields) { setEntry(h.entries, 1, 8192, ^uint64(0)) }, "partition 2 at LBAs 8192-18446744073709551615"},
		{"overlapping partitions", func(h *gptFields) { setEntry(h.entries, 1, 6000, 9000) }, "partitions 1 (sectors 2048+4096) and 2 (sectors 6000+3001) overlap"},
		{"a partition inside another", func(h *gptFields) { setEntry(h.entries, 0, 8200, 8300) }, "overlap"},
		{"the same extent twice", func(h *gptFields) { setEntry(h.entries, 0, 8192, 16383) }, "overlap"},
		{"entries of 256 bytes, one past the disk", func(h *gptFields) {
			h.entrySize, h.count = 256, 64
			copy(h.entries[256:384], h.entries[128:256])
			clear(h.entries[128:256])
			le.PutUint64(h.entries[256+40:], 1<<50)
		}, "partition 2 at LBAs 8192-1125899906842624"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := craftGPT(t, tc.edit)
			tab, err := readBounded(t, im.View(craftSize), craftSize, 512)
			if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %+v, %v; want ErrInvalidTable saying %q", tab, err, tc.want)
			}
		})
	}
}

// TestDamagedGPT: a GPT whose header or entries fail their CRC, or whose
// primary header is gone (the backup alone left), is invalid; so is a
// GPT read on a disk smaller than the one it was made for. The same GPT
// on a bigger disk (an image written to a bigger card) stands.
func TestDamagedGPT(t *testing.T) {
	valid := func(t *testing.T) Image { return craftGPT(t, func(*gptFields) {}) }
	for _, tc := range []struct {
		name string
		disk func(t *testing.T) (Image, int64)
		want string
	}{
		{"header CRC", func(t *testing.T) (Image, int64) {
			im := valid(t)
			im[2].Data[60] ^= 0xFF // in the disk GUID
			return im, craftSize
		}, "header CRC mismatch"},
		{"entries CRC", func(t *testing.T) (Image, int64) {
			im := valid(t)
			im[0].Data[56] ^= 0xFF // in partition 1's name
			return im, craftSize
		}, "entry array CRC mismatch"},
		{"backup header only", func(t *testing.T) (Image, int64) {
			im := valid(t)
			return Image{im[1], im[3], im[4]}, craftSize // the protective MBR, the backup entries and header
		}, "protective MBR (type ee) but no GPT header at LBA 1"},
		{"primary header zeroed", func(t *testing.T) (Image, int64) {
			im := valid(t)
			clear(im[2].Data)
			return im, craftSize
		}, "protective MBR"},
		{"a disk smaller than the table's", func(t *testing.T) (Image, int64) {
			return valid(t), craftSize / 2
		}, "alternate header at LBA 131071, outside LBAs 2 to 65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, size := tc.disk(t)
			tab, err := readBounded(t, im.View(size), size, 512)
			if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %+v, %v; want ErrInvalidTable saying %q", tab, err, tc.want)
			}
		})
	}
	t.Run("entries of 256 bytes", func(t *testing.T) {
		im := craftGPT(t, func(h *gptFields) {
			h.entrySize, h.count = 256, 64
			copy(h.entries[256:384], h.entries[128:256])
			clear(h.entries[128:256])
		})
		tab, err := readBounded(t, im.View(craftSize), craftSize, 512)
		if err != nil || len(tab.Partitions) != 2 || tab.Partitions[1] != craftBase.Partitions[1] {
			t.Errorf("Read = %+v, %v", tab, err)
		}
	})
	t.Run("on a bigger disk", func(t *testing.T) {
		tab, err := readBounded(t, valid(t).View(1<<40), 1<<40, 512)
		if err != nil {
			t.Fatal(err)
		}
		if err := craftBase.same(tab); err != nil {
			t.Error(err)
		}
	})
}

// mbrDisk is a 64 MiB disk holding an MBR with the given primary entries
// (type, start, sectors) and extended boot records at the given LBAs, each
// a logical entry and a link (relative start, sectors).
func mbrDisk(primary [][3]uint32, ebrs map[uint64][4]uint32) io.ReaderAt {
	mbr := make([]byte, 512)
	le.PutUint32(mbr[440:], 0x7c0ffee7)
	for i, p := range primary {
		e := mbr[446+16*i:]
		e[4] = byte(p[0])
		le.PutUint32(e[8:], p[1])
		le.PutUint32(e[12:], p[2])
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	im := Image{{0, mbr}}
	for at, r := range ebrs {
		ebr := make([]byte, 512)
		ebr[446+4] = 0x83
		le.PutUint32(ebr[446+8:], r[0])
		le.PutUint32(ebr[446+12:], r[1])
		if r[2] != 0 {
			ebr[462+4] = 0x05
			le.PutUint32(ebr[462+8:], r[2])
			le.PutUint32(ebr[462+12:], r[3])
		}
		ebr[510], ebr[511] = 0x55, 0xAA
		im = append(im, Write{int64(at) * 512, ebr})
	}
	return im.View(craftSize)
}

// TestInvalidMBR: primary partitions outside the disk or overlapping,
// logical ones leaving their extended partition or overlapping the next
// record, are refused by name; a valid chain reads.
func TestInvalidMBR(t *testing.T) {
	for _, tc := range []struct {
		name    string
		primary [][3]uint32
		ebrs    map[uint64][4]uint32
		want    string
	}{
		{"primary past the disk", [][3]uint32{{0x83, 2048, craftSectors}}, nil, "MBR partition 1 at sectors 2048+131072 leaves sectors 1 to 131071"},
		{"primary at 2^32 sectors", [][3]uint32{{0x83, 0xFFFFFFFF, 0xFFFFFFFF}}, nil, "MBR partition 1 at sectors 4294967295+4294967295"},
		{"primary on the MBR", [][3]uint32{{0x83, 0, 4096}}, nil, "MBR partition 1 at sectors 0+4096"},
		{"primaries overlapping", [][3]uint32{{0x83, 2048, 4096}, {0x83, 4096, 4096}}, nil, "partitions 1 (sectors 2048+4096) and 2 (sectors 4096+4096) overlap"},
		{"extended over a primary", [][3]uint32{{0x05, 2048, 16384}, {0x83, 10240, 4096}}, nil, "overlap"},
		{"logical past its extended", [][3]uint32{{0x05, 2048, 8192}}, map[uint64][4]uint32{2048: {2048, 8192, 0, 0}},
			"logical partition 5 at sectors 4096+8192 (its record at 2048) leaves the extended partition 2048+8192"},
		{"logical on its own record", [][3]uint32{{0x05, 2048, 8192}}, map[uint64][4]uint32{2048: {0, 100, 0, 0}}, "logical partition 5 at sectors 2048+100"},
		{"logical over the next record", [][3]uint32{{0x05, 2048, 16384}}, map[uint64][4]uint32{2048: {1, 8192, 4096, 100}, 6144: {1, 100, 0, 0}},
			"the logical partition ending at sector 10241 overlaps the extended boot record at 6144"},
		{"logicals overlapping", [][3]uint32{{0x05, 2048, 16384}}, map[uint64][4]uint32{2048: {1, 2048, 2048, 100}, 4096: {16, 100, 1024, 100}, 3072: {16, 100, 0, 0}},
			"overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := readBounded(t, mbrDisk(tc.primary, tc.ebrs), craftSize, 512)
			if !errors.Is(err, ErrInvalidTable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %+v, %v; want ErrInvalidTable saying %q", tab, err, tc.want)
			}
		})
	}
	t.Run("valid chain", func(t *testing.T) {
		tab, err := readBounded(t, mbrDisk([][3]uint32{{0x83, 2048, 2048}, {0x05, 4096, 16384}},
			map[uint64][4]uint32{4096: {2048, 2048, 4096, 4096}, 8192: {2048, 4096, 0, 0}}), craftSize, 512)
		if err != nil || tab == nil {
			t.Fatalf("Read = %+v, %v", tab, err)
		}
		got := slices.Collect(func(yield func([2]uint64) bool) {
			for _, p := range tab.Partitions {
				yield([2]uint64{p.Start, p.Sectors})
			}
		})
		if want := [][2]uint64{{2048, 2048}, {4096, 16384}, {6144, 2048}, {10240, 4096}}; !slices.Equal(got, want) {
			t.Errorf("extents %v, want %v", got, want)
		}
	})
}

// TestSectorSizes: a sector size Read cannot use is an error, not a panic
// (sysfs may report none).
func TestSectorSizes(t *testing.T) {
	im := craftGPT(t, func(*gptFields) {})
	for _, ss := range []int{0, -512, 256, 513, 1 << 20} {
		if _, err := Read(im.View(craftSize), ss); err == nil {
			t.Errorf("sectors of %d bytes: no error", ss)
		}
	}
}

// TestSizeUnknown: a reader whose size cannot be known is an error, since
// no field could be checked against the disk.
func TestSizeUnknown(t *testing.T) {
	im := craftGPT(t, func(*gptFields) {})
	if _, err := Read(struct{ io.ReaderAt }{im.View(craftSize)}, 512); err == nil || !strings.Contains(err.Error(), "size of the disk") {
		t.Errorf("Read = %v, want the disk's size unknown", err)
	}
}
