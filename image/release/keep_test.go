package release

import (
	"errors"
	"testing"
)

func TestPlaceKeeping(t *testing.T) {
	m, err := Parse(example(t))
	if err != nil {
		t.Fatal(err)
	}
	// The "small" layout: an old root then a data partition at 477 MiB.
	kept := map[string]Extent{"data": {Start: 477 << 20, Bytes: 34 << 20}}
	ext, err := m.Layout.PlaceKeeping(512<<20, kept)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]int64{}
	for _, e := range ext {
		got[e.Name] = [2]int64{e.Start >> 20, e.Bytes >> 20}
	}
	want := map[string][2]int64{"esp": {1, 64}, "root": {65, 256}, "state": {321, 156}, "data": {477, 34}}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s at %d MiB size %d MiB, want %v", n, got[n][0], got[n][1], w)
		}
	}
	// Too little room before the kept partition.
	if _, err := m.Layout.PlaceKeeping(512<<20, map[string]Extent{"data": {Start: 200 << 20, Bytes: 300 << 20}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("no room around the kept partition: %v, want ErrTooLarge", err)
	}
	// Nothing to keep: the keep partition is left out.
	ext, err = m.Layout.PlaceKeeping(1<<30, nil)
	if err != nil || len(ext) != 3 {
		t.Errorf("without kept partitions: %d extents, %v", len(ext), err)
	}
	if _, err := m.Layout.PlaceKeeping(300<<20, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("disk too small: %v, want ErrTooLarge", err)
	}
}
