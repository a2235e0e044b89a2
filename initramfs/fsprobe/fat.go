package fsprobe

import (
	"bytes"
	"fmt"
	"io"
)

// probeFAT recognises FAT12/16/32 boot sectors (blkid type "vfat"). An MBR
// also ends in 0x55AA, so the BIOS parameter block must look sane too.
func probeFAT(r io.ReaderAt, size int64) (*FS, error) {
	bs, err := readAt(r, size, 0, 512)
	if bs == nil || err != nil {
		return nil, err
	}
	if bs[510] != 0x55 || bs[511] != 0xAA || (bs[0] != 0xEB && bs[0] != 0xE9) {
		return nil, nil
	}
	bytesPerSector := le.Uint16(bs[11:])
	sectorsPerCluster := bs[13]
	reserved := le.Uint16(bs[14:])
	fats := bs[16]
	if !powerOfTwo(uint(bytesPerSector)) || bytesPerSector < 512 || bytesPerSector > 4096 ||
		!powerOfTwo(uint(sectorsPerCluster)) || reserved == 0 || fats == 0 || fats > 4 {
		return nil, nil
	}
	var label, id []byte
	version := "FAT32"
	switch {
	case bytes.HasPrefix(bs[82:90], []byte("FAT32")):
		id, label = bs[67:71], bs[71:82]
	case bytes.HasPrefix(bs[54:62], []byte("FAT1")) || bs[38] == 0x29:
		id, label = bs[39:43], bs[43:54]
		version = "FAT16"
		if bytes.HasPrefix(bs[54:62], []byte("FAT12")) {
			version = "FAT12"
		}
	default:
		return nil, nil
	}
	fs := &FS{Type: "vfat", Version: version, UUID: fmt.Sprintf("%04X-%04X", le.Uint16(id[2:]), le.Uint16(id[0:]))}
	if l := cstring(label); l != "NO NAME" {
		fs.Label = l
	}
	return fs, nil
}

func powerOfTwo(n uint) bool { return n != 0 && n&(n-1) == 0 }
