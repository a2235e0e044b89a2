package reattach

import (
	"bytes"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/roles"
)

func TestEntries(t *testing.T) {
	m := &release.Manifest{DataVolumes: release.DataVolumes{FstabMountpoints: []string{"/srv/recordings/*"}}}
	vols := []roles.Volume{
		{Device: "/dev/vda2", Spec: "UUID=aaaa", Mountpoint: "/srv/recordings/local", FSType: "ext4", UUID: "aaaa", Label: "camrec-data"},
		{Device: "/dev/vdb1", Spec: "LABEL=rec-b", Mountpoint: "/srv/recordings/d1", FSType: "ext4", UUID: "bbbb", Label: "rec-b"},
		{Device: "/dev/vdc", Spec: "UUID=cccc", Mountpoint: "/srv/recordings/d2", FSType: "xfs", UUID: "cccc", Label: "rec-xfs"},
		{Device: "/dev/vdd1", Spec: "LABEL=rec-extra", FSType: "ext4", UUID: "dddd", Label: "rec-extra"},
		{Device: "/dev/vde1", Spec: "LABEL=", FSType: "ext4"},
		{Device: "/dev/vdf1", Spec: "UUID=ffff", Mountpoint: "/srv/recordings/d1", FSType: "ext4", UUID: "ffff"},
	}
	entries, skipped := Entries(vols, m)
	var b bytes.Buffer
	fstab.Write(&b, entries)
	want := `UUID=aaaa /srv/recordings/local ext4 defaults,nofail 0 2
LABEL=rec-b /srv/recordings/d1 ext4 defaults,nofail 0 2
UUID=cccc /srv/recordings/d2 xfs defaults,nofail 0 0
LABEL=rec-extra /srv/recordings/rec-extra ext4 defaults,nofail 0 2
`
	if b.String() != want {
		t.Errorf("fstab:\n%s\nwant:\n%s", b.String(), want)
	}
	if len(skipped) != 2 || skipped[0].Volume.Device != "/dev/vde1" || skipped[1].Volume.Device != "/dev/vdf1" {
		t.Errorf("skipped %+v", skipped)
	}
	// The same label on two volumes: named by UUID instead.
	two := []roles.Volume{
		{Spec: "LABEL=rec", Mountpoint: "/srv/recordings/a", FSType: "ext4", UUID: "1", Label: "rec"},
		{Spec: "LABEL=rec", Mountpoint: "/srv/recordings/b", FSType: "ext4", UUID: "2", Label: "rec"},
	}
	if e, _ := Entries(two, m); len(e) != 2 || e[0].Spec != "UUID=1" || e[1].Spec != "UUID=2" {
		t.Errorf("duplicate labels: %+v", e)
	}
}
