package ptable

import (
	"bytes"
	"cmp"
	"hash/crc32"
	"reflect"
	"slices"
	"testing"
)

// FuzzRead reads a sparse disk (see sparseDisk) of size bytes, of 512- or
// 4096-byte sectors, seeded with the sectors sfdisk wrote for the real
// layouts. With fixCRC the GPT's CRCs are computed again first, so that
// the bounds behind them are reached. A table read lies inside the disk,
// its partitions overlap none, reading it asked for no more than the
// bounds, and when Encode takes it, it reads back the same.
func FuzzRead(f *testing.F) {
	for _, d := range seedDisks(f) {
		f.Add(uint64(d.size), d.sectorSize == 4096, false, d.sectors)
		f.Add(uint64(d.size), d.sectorSize == 4096, true, d.sectors)
	}
	f.Fuzz(func(t *testing.T, size uint64, fourK, fixCRC bool, sectors []byte) {
		ss := 512
		if fourK {
			ss = 4096
		}
		im, n := sparseDisk(int64(min(size, 1<<62)), ss, sectors)
		if fixCRC {
			fixGPT(im, n, ss)
		}
		c := &countingReader{r: im.View(n), size: n}
		tab, err := Read(c, ss)
		if c.bytes > maxEntryArray+(maxLogical+8)*int64(ss) {
			t.Fatalf("Read asked for %d bytes", c.bytes)
		}
		if err != nil || tab == nil {
			return
		}
		checkInside(t, tab, uint64(n/int64(ss)))
		im2, err := tab.Encode(Geometry{Size: n, SectorSize: ss})
		if err != nil {
			return
		}
		back, err := Read(im2.View(n), ss)
		if err != nil || !reflect.DeepEqual(back, tab) {
			t.Fatalf("Read(Encode(t)) = %+v, %v; t = %+v", back, err, tab)
		}
	})
}

// checkInside fails unless every partition of tab lies in sectors 1 to
// n-1, none overlapping another: for a dos table, primaries among
// themselves, logical ones inside the extended partition and among
// themselves.
func checkInside(t *testing.T, tab *Table, n uint64) {
	t.Helper()
	var primary, logical []Entry
	for _, p := range tab.Partitions {
		if p.Start == 0 || p.Sectors == 0 || p.Start >= n || p.Sectors > n-p.Start {
			t.Fatalf("partition %+v leaves sectors 1 to %d", p, n-1)
		}
		if tab.Type == "dos" && p.Number > 4 {
			logical = append(logical, p)
		} else {
			primary = append(primary, p)
		}
	}
	disjoint := func(es []Entry) {
		es = slices.Clone(es)
		slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.Start, b.Start) })
		for i := 1; i < len(es); i++ {
			if es[i-1].Start+es[i-1].Sectors > es[i].Start {
				t.Fatalf("partitions %+v and %+v overlap", es[i-1], es[i])
			}
		}
	}
	disjoint(primary)
	disjoint(logical)
	for _, l := range logical {
		if !slices.ContainsFunc(primary, func(e Entry) bool {
			return (e.Type == "5" || e.Type == "f" || e.Type == "85") && l.Start > e.Start && l.Start+l.Sectors <= e.Start+e.Sectors
		}) {
			t.Fatalf("logical partition %+v outside every extended partition of %+v", l, primary)
		}
	}
}

// fixGPT computes again the CRCs of the GPT header at LBA 1 of im, if
// there is one, and of the entry array it names (when that is within
// the bounds; the rest is Read's to refuse).
func fixGPT(im Image, size int64, ss int) {
	var hdr []byte
	for _, w := range im {
		if w.Offset == int64(ss) {
			hdr = w.Data
		}
	}
	if hdr == nil || !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return
	}
	if at, n := le.Uint64(hdr[72:]), uint64(le.Uint32(hdr[80:]))*uint64(le.Uint32(hdr[84:])); n <= maxEntryArray && at < uint64(size)/uint64(ss) {
		ents := make([]byte, n)
		im.View(size).ReadAt(ents, int64(at)*int64(ss))
		le.PutUint32(hdr[88:], crc32.ChecksumIEEE(ents))
	}
	hsize := min(max(le.Uint32(hdr[12:]), 92), uint32(ss))
	clear(hdr[16:20])
	le.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:hsize]))
}
