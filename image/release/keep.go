package release

import (
	"fmt"
	"sort"
)

// PlaceKeeping places the layout on a disk of diskSize bytes where some
// partitions must stay where they are: kept maps the name of a keep
// partition to its current extent (start and size in bytes). Every other
// partition goes, in layout order, into the first free gap large enough,
// aligned to 1 MiB; a keep partition with no current extent (nothing to
// keep on this disk) is left out. It fails with ErrTooLarge, with figures.
func (l Layout) PlaceKeeping(diskSize int64, kept map[string]Extent) ([]Extent, error) {
	end := (diskSize - gptTail) / Alignment * Alignment
	type gap struct{ start, end int64 }
	var fixed []Extent
	for _, p := range l.Partitions {
		if e, ok := kept[p.Name]; ok && p.Role == RoleKeep {
			if e.Start+e.Bytes > diskSize-gptTail || e.Start < Alignment {
				return nil, fmt.Errorf("%w: kept partition %q at %d+%d does not fit a GPT on a disk of %d bytes", ErrTooLarge, p.Name, e.Start, e.Bytes, diskSize)
			}
			fixed = append(fixed, Extent{Partition: p, Start: e.Start, Bytes: e.Bytes})
		}
	}
	sort.Slice(fixed, func(i, j int) bool { return fixed[i].Start < fixed[j].Start })
	var gaps []gap
	pos := int64(Alignment)
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
