package fstab

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseWrite(t *testing.T) {
	in := `# comment
UUID=1234-abcd / ext4 errors=remount-ro 0 1

LABEL=rec-b /srv/recordings/d1 ext4 defaults,nofail 0 2
PARTUUID=0a0b0c0d-02	/srv/My\040Videos	xfs
/dev/disk/by-id/ata-X-part1 /mnt
`
	es, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("%d entries: %+v", len(es), es)
	}
	if es[1] != (Entry{"LABEL=rec-b", "/srv/recordings/d1", "ext4", "defaults,nofail", 0, 2}) {
		t.Errorf("entry 2 = %+v", es[1])
	}
	if es[2].Mountpoint != "/srv/My Videos" || es[2].Type != "xfs" || es[2].Options != "defaults" {
		t.Errorf("entry 3 = %+v", es[2])
	}
	if es[3].Type != "auto" {
		t.Errorf("entry 4 = %+v", es[3])
	}
	var b bytes.Buffer
	Write(&b, es)
	again, _ := Parse(&b)
	for i := range es {
		if again[i] != es[i] {
			t.Errorf("round trip %d: %+v != %+v", i, again[i], es[i])
		}
	}
	if _, err := Parse(strings.NewReader("/dev/sda1\n")); err == nil {
		t.Error("line without mount point: want an error")
	}
}

func TestParseMountUnit(t *testing.T) {
	unit := "[Unit]\nDescription=Recordings\nWhat=/not/this\n\n[Mount]\nWhat=/dev/disk/by-uuid/1234-abcd\nWhere=/srv/recordings/nas\nType=ext4\nOptions=noatime\n\n[Install]\nWantedBy=multi-user.target\n"
	e, err := ParseMountUnit(strings.NewReader(unit))
	if err != nil || e != (Entry{Spec: "/dev/disk/by-uuid/1234-abcd", Mountpoint: "/srv/recordings/nas", Type: "ext4", Options: "noatime"}) {
		t.Errorf("ParseMountUnit = %+v, %v", e, err)
	}
	if _, err := ParseMountUnit(strings.NewReader("[Service]\nExecStart=/bin/true\n")); !errors.Is(err, ErrNotAMount) {
		t.Errorf("a service unit: %v, want ErrNotAMount", err)
	}
}
