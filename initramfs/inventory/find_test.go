package inventory

import (
	"errors"
	"testing"

	"github.com/passeur/passeur/initramfs/fsprobe"
)

func TestFind(t *testing.T) {
	disks := []Disk{
		{Path: "/dev/vda", Partitions: []Partition{
			{Path: "/dev/vda1", PartUUID: "AAAA-01", PartLabel: "root", FS: &fsprobe.FS{Type: "ext4", UUID: "11111111-2222-3333-4444-555555555555", Label: "camrec-root"}},
			{Path: "/dev/vda2", PartUUID: "aaaa-02", PartLabel: "data", FS: &fsprobe.FS{Type: "ext4", UUID: "dup", Label: "rec"}},
		}},
		{Path: "/dev/vdb", FS: &fsprobe.FS{Type: "xfs", UUID: "DUP", Label: "x"}},
		{Path: "/dev/vdc", FS: &fsprobe.FS{Type: "xfs", UUID: "9", Label: "rec-b"}},
	}
	for spec, want := range map[string]string{
		"UUID=11111111-2222-3333-4444-555555555555":  "/dev/vda1",
		"UUID=11111111-2222-3333-4444-555555555555 ": "",
		"LABEL=rec-b":      "/dev/vdc",
		"PARTUUID=AAAA-02": "/dev/vda2",
		"PARTLABEL=root":   "/dev/vda1",
		"/dev/vdb":         "/dev/vdb",
	} {
		got, err := Find(disks, spec)
		if want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Find(%q) = %q, %v; want ErrNotFound", spec, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Find(%q) = %q, %v; want %s", spec, got, err, want)
		}
	}
	if _, err := Find(disks, "UUID=dup"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("cloned UUID: %v, want ErrAmbiguous", err)
	}
	if _, err := Find(disks, "LABEL=nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing label: %v, want ErrNotFound", err)
	}
	if fs := FSOf(disks, "/dev/vda2"); fs == nil || fs.Label != "rec" {
		t.Errorf("FSOf = %+v", fs)
	}
}
