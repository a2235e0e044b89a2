package release

import "fmt"

// Alignment is where partitions start: 1 MiB, as every partitioning tool
// does, which suits 512-byte and 4 KiB sectors and flash erase blocks.
const Alignment = 1 << 20

// gptTail is what the backup GPT takes at the end of a disk: a header and
// 128 entries of 128 bytes, in 512-byte sectors.
const gptTail = 33 * 512

// Extent is where a partition of the layout goes on a disk.
type Extent struct {
	Partition
	Start int64 // bytes from the start of the disk
	Bytes int64
}

// Placement is a layout placed on one disk: the partition table that
// holds it ("gpt", or the layout's fallback "dos") and every partition's
// extent, kept ones included, in layout order.
type Placement struct {
	Table   string   `json:"table"`
	Extents []Extent `json:"extents"`
}

// Place computes where each partition of the layout goes on a disk of
// diskSize bytes: in order, each start aligned to 1 MiB, fixed sizes as
// given, a "min:" size as given unless it is the last partition, which
// (like "rest") takes everything up to the backup GPT. It fails with
// ErrTooLarge when the layout does not fit.
func (l Layout) Place(diskSize int64) ([]Extent, error) {
	end := (diskSize - gptTail) / Alignment * Alignment // last usable aligned byte
	var out []Extent
	pos := int64(Alignment)
	for i, p := range l.Partitions {
		last := i == len(l.Partitions)-1
		size := p.Size.Bytes
		if last && (p.Size.Rest || p.Size.Min) {
			size = end - pos
			if size < p.Size.Bytes || size < Alignment {
				return nil, fmt.Errorf("%w: partition %q needs at least %d bytes at %d, the disk of %d bytes leaves %d",
					ErrTooLarge, p.Name, max(p.Size.Bytes, Alignment), pos, diskSize, max(end-pos, 0))
			}
		}
		if pos+size > end {
			return nil, fmt.Errorf("%w: partition %q (%s) would end at byte %d, the disk of %d bytes allows %d",
				ErrTooLarge, p.Name, p.Size, pos+size, diskSize, end)
		}
		out = append(out, Extent{Partition: p, Start: pos, Bytes: size})
		pos = (pos + size + Alignment - 1) / Alignment * Alignment
	}
	return out, nil
}

// MinDiskSize is the smallest disk the layout fits on.
func (l Layout) MinDiskSize() int64 {
	pos := int64(Alignment)
	for _, p := range l.Partitions {
		size := max(p.Size.Bytes, Alignment)
		pos = (pos + size + Alignment - 1) / Alignment * Alignment
	}
	return pos + Alignment // room for the backup GPT, rounded
}
