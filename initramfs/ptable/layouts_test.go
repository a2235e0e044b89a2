package ptable

import (
	"fmt"
	"slices"
	"testing"
)

// TestRealLayouts reads the sectors sfdisk wrote for each real layout
// (testdata/disks) and compares with what sfdisk --dump says of them: the
// bounds Read checks refuse none of them.
func TestRealLayouts(t *testing.T) {
	for _, d := range seedDisks(t) {
		t.Run(d.name, func(t *testing.T) {
			im, size := sparseDisk(d.size, d.sectorSize, d.sectors)
			tab, err := Read(im.View(size), d.sectorSize)
			if err != nil || tab == nil {
				t.Fatalf("Read = %+v, %v", tab, err)
			}
			if tab.Type != d.label || tab.ID != d.id {
				t.Errorf("table %s %s, sfdisk says %s %s", tab.Type, tab.ID, d.label, d.id)
			}
			got := slices.Clone(tab.Partitions)
			slices.SortFunc(got, func(a, b Entry) int { return a.Number - b.Number })
			if len(got) != len(d.partitions) {
				t.Fatalf("%d partitions, sfdisk says %d:\n%s", len(got), len(d.partitions), d.dump)
			}
			for i, p := range got {
				w := d.partitions[i]
				uuid := w.UUID
				if d.label == "dos" {
					uuid = fmt.Sprintf("%s-%02x", d.id, w.Number)
				}
				if p.Number != w.Number || p.Start != w.Start || p.Sectors != w.Size || p.Type != w.Type ||
					p.UUID != uuid || p.Name != w.Name || p.Bootable != w.Bootable {
					t.Errorf("partition %+v, sfdisk says %+v", p, w)
				}
			}
		})
	}
}
