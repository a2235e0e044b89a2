// Package ptable reads partition tables (MBR "dos" and GPT) from an
// io.ReaderAt: their type, identifier, and each entry's PARTUUID, type and
// name, in the forms blkid and sfdisk print them.
package ptable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

var le = binary.LittleEndian

// Read returns the partition table on r, or nil if there is none. A GPT is
// looked for at LBA 1 with the given logical sector size. The protective MBR
// of a GPT disk is not reported as a dos table.
func Read(r io.ReaderAt, sectorSize int) (*Table, error) {
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
	if t, err := readGPT(r, sectorSize); t != nil || err != nil {
		return t, err
	}
	t := readMBR(mbr)
	if t != nil {
		t.Partitions = append(t.Partitions, readLogical(r, sectorSize, t)...)
	}
	return t, nil
}

// maxLogical bounds the extended boot records read: a chain read from a
// disk may loop, run on, or hold empty records.
const maxLogical = 128

// readLogical follows the chain of extended boot records of the first
// extended partition of t and returns its logical partitions, numbered
// from 5 as the kernel numbers them. A broken link ends the chain: what
// was read stands.
func readLogical(r io.ReaderAt, sectorSize int, t *Table) []Entry {
	var ext *Entry
	for i, e := range t.Partitions {
		if e.Type == "5" || e.Type == "f" || e.Type == "85" {
			ext = &t.Partitions[i]
			break
		}
	}
	if ext == nil {
		return nil
	}
	var out []Entry
	seen := map[uint64]bool{}
	ebr := make([]byte, 512)
	for at := ext.Start; len(seen) < maxLogical && !seen[at] && at < ext.Start+ext.Sectors; {
		seen[at] = true
		if _, err := r.ReadAt(ebr, int64(at)*int64(sectorSize)); err != nil || ebr[510] != 0x55 || ebr[511] != 0xAA {
			break
		}
		e, next := ebr[446:462], ebr[462:478]
		if typ, start, n := e[4], le.Uint32(e[8:]), le.Uint32(e[12:]); typ != 0 && n != 0 {
			out = append(out, Entry{
				Number:   5 + len(out),
				Start:    at + uint64(start),
				Sectors:  uint64(n),
				Type:     fmt.Sprintf("%x", typ),
				UUID:     fmt.Sprintf("%s-%02x", t.ID, 5+len(out)),
				Bootable: e[0] == 0x80,
			})
		}
		if next[4] == 0 || le.Uint32(next[8:]) == 0 {
			break
		}
		at = ext.Start + uint64(le.Uint32(next[8:]))
	}
	return out
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
