// Package fat makes FAT32 images with go-diskfs that fsck.fat finds clean.
// go-diskfs v1.9.4 leaves two things behind that fsck.fat would fix: the
// ".." entry of a directory in the root points to the root's cluster
// instead of 0 (as the FAT specification requires), and the FSInfo sector's
// free cluster count is left unknown. Fixup repairs both in place. At some
// sizes (a 2 GiB key) it also lays out a FAT too short for its clusters,
// which no tool reads: Make checks the layout and makes it again a cluster
// smaller.
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

// ErrGeometry means a boot sector whose layout does not hold together: a
// FAT32 filesystem no tool would read. Fixup refuses it rather than read
// past its FAT.
var ErrGeometry = errors.New("FAT32 boot sector with an impossible geometry")

// errShortFAT is the ErrGeometry of a FAT with fewer entries than the
// data area has clusters.
var errShortFAT = fmt.Errorf("%w: the FAT has fewer entries than the data area has clusters", ErrGeometry)

var le = binary.LittleEndian

type geometry struct {
	sector, perCluster int64
	fatStart, fatSize  int64 // in bytes
	dataStart          int64 // in bytes
	clusters           uint32
	root               uint32
	fsinfo             int64 // byte offset of the FSInfo sector
}

// maxClusters is the most clusters FAT32's 28-bit entries can number.
const maxClusters = 0x0ffffff5

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
	fsinfo := int64(le.Uint16(bs[48:]))
	g.root = le.Uint32(bs[44:])
	bad := func(what string, args ...any) error {
		return fmt.Errorf("%w: "+what, append([]any{ErrGeometry}, args...)...)
	}
	switch {
	case g.sector != 512 && g.sector != 1024 && g.sector != 2048 && g.sector != 4096:
		return nil, bad("%d bytes a sector", g.sector)
	case g.perCluster == 0 || g.perCluster&(g.perCluster-1) != 0:
		return nil, bad("%d sectors a cluster", g.perCluster)
	case fsinfo == 0 || fsinfo >= reserved:
		return nil, bad("FSInfo sector %d outside the %d reserved sectors", fsinfo, reserved)
	case fats == 0 || fatSectors == 0 || reserved+fats*fatSectors >= total:
		return nil, bad("%d reserved sectors and %d FATs of %d sectors leave no data area in %d sectors", reserved, fats, fatSectors, total)
	}
	g.fsinfo = fsinfo * g.sector
	g.fatStart = reserved * g.sector
	g.fatSize = fatSectors * g.sector
	g.dataStart = (reserved + fats*fatSectors) * g.sector
	clusters := (total - reserved - fats*fatSectors) / g.perCluster
	switch {
	case clusters == 0 || clusters > maxClusters:
		return nil, bad("%d clusters", clusters)
	case clusters+2 > g.fatSize/4:
		return nil, fmt.Errorf("%w (%d clusters, %d entries after the 2 reserved)", errShortFAT, clusters, g.fatSize/4-2)
	case int64(g.root) < 2 || int64(g.root) >= clusters+2:
		return nil, bad("root folder at cluster %d, outside clusters 2 to %d", g.root, clusters+1)
	}
	g.clusters = uint32(clusters)
	return g, nil
}

func (g *geometry) clusterOffset(c uint32) int64 {
	return g.dataStart + int64(c-2)*g.perCluster*g.sector
}

// valid reports whether c numbers a cluster of the data area.
func (g *geometry) valid(c uint32) bool { return c >= 2 && c < g.clusters+2 }

// Fixup repairs, in place, what go-diskfs leaves for fsck.fat to fix.
func Fixup(img Image) error {
	g, err := readGeometry(img)
	if err != nil {
		return err
	}
	// Only the entries of the data area's clusters: a FAT may be longer.
	table := make([]byte, 4*(int64(g.clusters)+2))
	if _, err := img.ReadAt(table, g.fatStart); err != nil {
		return fmt.Errorf("read FAT: %w", err)
	}
	next := func(c uint32) uint32 { return le.Uint32(table[4*c:]) & 0x0fffffff }
	clusterBytes := g.perCluster * g.sector
	buf := make([]byte, clusterBytes)
	// The chain is followed at most once around the data area: a loop
	// in it ends there.
	c := g.root
	for n := uint32(0); c < 0x0ffffff8; c, n = next(c), n+1 {
		if !g.valid(c) || n > g.clusters {
			return fmt.Errorf("%w: the root folder's chain reaches cluster %#x", ErrGeometry, c)
		}
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
			if !g.valid(sub) {
				return fmt.Errorf("%w: folder %q of the root at cluster %#x", ErrGeometry, e[0:11], sub)
			}
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
