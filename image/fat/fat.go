// Package fat makes FAT32 images with go-diskfs that fsck.fat finds clean.
// go-diskfs v1.9.4 leaves two things behind that fsck.fat would fix: the
// ".." entry of a directory in the root points to the root's cluster
// instead of 0 (as the FAT specification requires), and the FSInfo sector's
// free cluster count is left unknown. Fixup repairs both in place.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Image is a FAT32 image or partition opened for reading and writing.
type Image interface {
	io.ReaderAt
	io.WriterAt
}

var le = binary.LittleEndian

type geometry struct {
	sector, perCluster int64
	fatStart, fatSize  int64 // in bytes
	dataStart          int64 // in bytes
	clusters           uint32
	root               uint32
	fsinfo             int64 // byte offset of the FSInfo sector
}

func readGeometry(img Image) (*geometry, error) {
	bs := make([]byte, 512)
	if _, err := img.ReadAt(bs, 0); err != nil {
		return nil, fmt.Errorf("read boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xAA || string(bs[82:87]) != "FAT32" {
		return nil, errors.New("not a FAT32 boot sector")
	}
	g := &geometry{sector: int64(le.Uint16(bs[11:])), perCluster: int64(bs[13])}
	reserved, fats := int64(le.Uint16(bs[14:])), int64(bs[16])
	total := int64(le.Uint32(bs[32:]))
	fatSectors := int64(le.Uint32(bs[36:]))
	g.root = le.Uint32(bs[44:])
	g.fsinfo = int64(le.Uint16(bs[48:])) * g.sector
	g.fatStart = reserved * g.sector
	g.fatSize = fatSectors * g.sector
	g.dataStart = (reserved + fats*fatSectors) * g.sector
	g.clusters = uint32((total - reserved - fats*fatSectors) / g.perCluster)
	if g.sector == 0 || g.perCluster == 0 || g.clusters == 0 {
		return nil, errors.New("FAT32 boot sector with an impossible geometry")
	}
	return g, nil
}

func (g *geometry) clusterOffset(c uint32) int64 {
	return g.dataStart + int64(c-2)*g.perCluster*g.sector
}

// Fixup repairs, in place, what go-diskfs leaves for fsck.fat to fix.
func Fixup(img Image) error {
	g, err := readGeometry(img)
	if err != nil {
		return err
	}
	table := make([]byte, g.fatSize)
	if _, err := img.ReadAt(table, g.fatStart); err != nil {
		return fmt.Errorf("read FAT: %w", err)
	}
	next := func(c uint32) uint32 { return le.Uint32(table[4*c:]) & 0x0fffffff }
	clusterBytes := g.perCluster * g.sector
	buf := make([]byte, clusterBytes)
	for c := g.root; c >= 2 && c < 0x0ffffff8; c = next(c) {
		if _, err := img.ReadAt(buf, g.clusterOffset(c)); err != nil {
			return err
		}
		for off := int64(0); off < clusterBytes; off += 32 {
			e := buf[off : off+32]
			if e[0] == 0 {
				break
			}
			if e[0] == 0xE5 || e[11] == 0x0F || e[11]&0x10 == 0 || e[0] == '.' {
				continue
			}
			sub := uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:]))
			if err := fixDotDot(img, g, sub); err != nil {
				return err
			}
		}
	}
	free, first := uint32(0), uint32(0xffffffff)
	for c := uint32(2); c < g.clusters+2; c++ {
		if next(c) == 0 {
			free++
			if first == 0xffffffff {
				first = c
			}
		}
	}
	var fs [8]byte
	le.PutUint32(fs[0:], free)
	le.PutUint32(fs[4:], first)
	_, err = img.WriteAt(fs[:], g.fsinfo+488)
	return err
}

// fixDotDot points the ".." entry of a directory of the root to cluster 0.
func fixDotDot(img Image, g *geometry, dir uint32) error {
	e := make([]byte, 32)
	off := g.clusterOffset(dir) + 32 // ".." is the second entry
	if _, err := img.ReadAt(e, off); err != nil {
		return err
	}
	if string(e[0:11]) != "..         " {
		return nil
	}
	if c := uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])); c == 0 {
		return nil
	}
	_, err := img.WriteAt([]byte{0, 0}, off+20)
	if err == nil {
		_, err = img.WriteAt([]byte{0, 0}, off+26)
	}
	return err
}
