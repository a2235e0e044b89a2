package ptable

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// readGPT reads the primary GPT header at LBA 1 and its entries. It returns
// nil, nil when there is no GPT signature, and an error when the header or
// entries fail their CRC (a damaged GPT is not silently taken as absent).
func readGPT(r io.ReaderAt, sectorSize int) (*Table, error) {
	hdr := make([]byte, sectorSize)
	if _, err := r.ReadAt(hdr, int64(sectorSize)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if !bytes.Equal(hdr[0:8], []byte("EFI PART")) {
		return nil, nil
	}
	hsize := le.Uint32(hdr[12:])
	if hsize < 92 || int(hsize) > sectorSize {
		return nil, fmt.Errorf("GPT header size %d is invalid", hsize)
	}
	h := append([]byte(nil), hdr[:hsize]...)
	want := le.Uint32(h[16:])
	copy(h[16:20], []byte{0, 0, 0, 0})
	if crc32.ChecksumIEEE(h) != want {
		return nil, errors.New("GPT header CRC mismatch")
	}
	entriesLBA, count, esize := le.Uint64(hdr[72:]), le.Uint32(hdr[80:]), le.Uint32(hdr[84:])
	if esize < 128 || count > 4096 {
		return nil, fmt.Errorf("GPT entry array of %d entries of %d bytes is invalid", count, esize)
	}
	ents := make([]byte, int(count)*int(esize))
	if _, err := r.ReadAt(ents, int64(entriesLBA)*int64(sectorSize)); err != nil {
		return nil, fmt.Errorf("read GPT entries: %w", err)
	}
	if crc32.ChecksumIEEE(ents) != le.Uint32(hdr[88:]) {
		return nil, errors.New("GPT entry array CRC mismatch")
	}
	t := &Table{Type: "gpt", ID: guid(hdr[56:72])}
	for i := 0; i < int(count); i++ {
		e := ents[i*int(esize) : (i+1)*int(esize)]
		if bytes.Equal(e[0:16], make([]byte, 16)) {
			continue
		}
		first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
		t.Partitions = append(t.Partitions, Entry{
			Number:  i + 1,
			Start:   first,
			Sectors: last - first + 1,
			Type:    guid(e[0:16]),
			UUID:    guid(e[16:32]),
			Name:    utf16Name(e[56:128]),
		})
	}
	return t, nil
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
