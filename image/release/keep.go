package release

import (
	"fmt"
	"sort"
)

// Region is the bytes of a disk that partitions may occupy under its
// table: a GPT keeps its headers and entries at both ends, an MBR only its
// first sector.
type Region struct {
	Table      string // gpt or dos, for messages
	Start, End int64
}

// GPTRegion is the Region of a GPT of 128 entries on a disk of diskSize
// bytes with 512-byte sectors.
func GPTRegion(diskSize int64) Region {
	return Region{Table: "gpt", Start: 34 * 512, End: diskSize - gptTail}
}

// PlaceKeeping places the layout on a disk of diskSize bytes under a GPT
// (see PlaceIn).
func (l Layout) PlaceKeeping(diskSize int64, kept map[string]Extent) ([]Extent, error) {
	return l.PlaceIn(diskSize, GPTRegion(diskSize), kept)
}

// PlaceIn places the layout in region r of a disk of diskSize bytes where
// some partitions must stay where they are: kept maps the name of a keep
// partition to its current extent (start and size in bytes), which must lie
// in r. Every other partition goes, in layout order, into the first free
// gap large enough, aligned to 1 MiB; a keep partition with no current
// extent (nothing to keep on this disk) is left out. It fails with
// ErrTooLarge, with figures.
func (l Layout) PlaceIn(diskSize int64, r Region, kept map[string]Extent) ([]Extent, error) {
	end := r.End / Alignment * Alignment
	type gap struct{ start, end int64 }
	var fixed []Extent
	for _, p := range l.Partitions {
		if e, ok := kept[p.Name]; ok && p.Role == RoleKeep {
			if e.Start+e.Bytes > r.End || e.Start < r.Start {
				return nil, fmt.Errorf("%w: kept partition %q at %d+%d lies outside the bytes [%d, %d) a %s leaves for partitions on a disk of %d bytes",
					ErrTooLarge, p.Name, e.Start, e.Bytes, r.Start, r.End, tableName(r.Table), diskSize)
			}
			fixed = append(fixed, Extent{Partition: p, Start: e.Start, Bytes: e.Bytes})
		}
	}
	sort.Slice(fixed, func(i, j int) bool { return fixed[i].Start < fixed[j].Start })
	for i := 1; i < len(fixed); i++ {
		if fixed[i-1].Start+fixed[i-1].Bytes > fixed[i].Start {
			return nil, fmt.Errorf("%w: kept partitions %q and %q overlap", ErrLayout, fixed[i-1].Name, fixed[i].Name)
		}
	}
	var gaps []gap
	pos := (max(r.Start, Alignment) + Alignment - 1) / Alignment * Alignment
	for _, f := range fixed {
		if f.Start > pos {
			gaps = append(gaps, gap{pos, f.Start})
		}
		pos = max(pos, (f.Start+f.Bytes+Alignment-1)/Alignment*Alignment)
	}
	if pos < end {
		gaps = append(gaps, gap{pos, end})
	}
	var out []Extent
	for _, p := range l.Partitions {
		if p.Role == RoleKeep {
			for _, f := range fixed {
				if f.Name == p.Name {
					out = append(out, f)
				}
			}
			continue
		}
		placed := false
		for i := range gaps {
			g := &gaps[i]
			size := p.Size.Bytes
			if p.Size.Rest || p.Size.Min && isLastPlaced(l, p) {
				size = g.end - g.start
			}
			if size < max(p.Size.Bytes, Alignment) || g.start+size > g.end {
				continue
			}
			out = append(out, Extent{Partition: p, Start: g.start, Bytes: size})
			g.start = (g.start + size + Alignment - 1) / Alignment * Alignment
			placed = true
			break
		}
		if !placed {
			largest := int64(0)
			for _, g := range gaps {
				largest = max(largest, g.end-g.start)
			}
			return nil, fmt.Errorf("%w: partition %q (%s) fits in no free space of the disk of %d bytes around the kept partitions (largest gap %d bytes)",
				ErrTooLarge, p.Name, p.Size, diskSize, largest)
		}
	}
	return out, nil
}

func tableName(t string) string {
	if t == "dos" {
		return "MBR"
	}
	return "GPT"
}

// isLastPlaced reports whether p is the last partition of the layout that
// is not kept: a "min:" size there grows into the rest of its gap.
func isLastPlaced(l Layout, p Partition) bool {
	for i := len(l.Partitions) - 1; i >= 0; i-- {
		if l.Partitions[i].Role != RoleKeep {
			return l.Partitions[i].Name == p.Name
		}
	}
	return false
}
