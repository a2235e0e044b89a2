package mountinfo

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const table = `22 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw
30 22 254:17 / /srv/rec\0401 rw,relatime shared:10 - ext4 /dev/vdb1 rw
31 22 254:17 /clips /var/clips rw,relatime shared:10 master:3 - ext4 /dev/vdb1 rw
32 22 254:33 / /srv/rec2 ro,relatime - xfs /dev/vdc1 ro
`
	mounts, err := Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 4 {
		t.Fatalf("%d mounts, want 4", len(mounts))
	}
	if m := mounts[1]; m.Point != "/srv/rec 1" || m.Dev != "254:17" || m.Root != "/" || m.ReadOnly || m.Type != "ext4" {
		t.Errorf("the escaped mount: %+v", m)
	}
	if m := mounts[2]; m.Root != "/clips" || m.Type != "ext4" {
		t.Errorf("the bound folder, with two optional fields: %+v", m)
	}
	if m := mounts[3]; !m.ReadOnly || m.Type != "xfs" {
		t.Errorf("the read-only mount: %+v", m)
	}
	if _, err := Parse(strings.NewReader("22 1 254:2 / / rw\n")); err == nil {
		t.Error("a line without its separator was read")
	}
}

// TestRead: this process's own table has its root.
func TestRead(t *testing.T) {
	mounts, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.Point == "/" {
			return
		}
	}
	t.Errorf("no mount at / in %d mounts", len(mounts))
}
