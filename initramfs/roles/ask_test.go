package roles

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/passeur/passeur/initramfs/inventory"
)

// script answers questions in order and records them.
type script struct {
	answers   []int
	questions []string
}

func (s *script) Ask(refusal error, q string, choices []string) (int, error) {
	s.questions = append(s.questions, q)
	if len(s.answers) == 0 {
		return -1, refusal
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

func TestOperatorSettlesAmbiguity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func([]inventory.Disk, mapReader) []inventory.Disk
		answer int
		want   string
	}{
		{"two systems: the second", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			r["/dev/sdb"] = r["/dev/vda1"]
			return d
		}, 1, "D1=data D2=data KEY=install-media OTHER=system SYS=data"}, // its data partition is in the chosen fstab
		{"two systems: the first; the other's data partition asked nothing", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			r["/dev/vdd1"] = r["/dev/vda1"]
			return append(d, inventory.Disk{Path: "/dev/vdd", Serial: "SYS2", Partitions: []inventory.Partition{
				{Path: "/dev/vdd1", FS: ext4("r00t2", "camrec-root")}, {Path: "/dev/vdd2", FS: ext4("da7a2", "camrec-data")}}})
		}, 0, "D1=data D2=data KEY=install-media OTHER=unknown SYS2=unknown SYS=system"},
		{"two systems: the first; the other's data disk asked nothing", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			r["/dev/vdd1"] = fstest.MapFS{}
			for k, v := range r["/dev/vda1"] {
				r["/dev/vdd1"][k] = v
			}
			r["/dev/vdd1"]["etc/fstab"] = &fstest.MapFile{Data: []byte("UUID=r00t2 / ext4 defaults 0 1\nUUID=da7a3 /srv/recordings/d9 ext4 defaults 0 2\n")}
			return append(d, inventory.Disk{Path: "/dev/vdd", Serial: "SYS2", Partitions: []inventory.Partition{{Path: "/dev/vdd1", FS: ext4("r00t2", "camrec-root")}}},
				inventory.Disk{Path: "/dev/vde", Serial: "DATA2", Partitions: []inventory.Partition{{Path: "/dev/vde1", FS: ext4("da7a3", "camrec-data")}}})
		}, 0, "D1=data D2=data DATA2=unknown KEY=install-media OTHER=unknown SYS2=unknown SYS=system"},
		{"missing data disk: go on", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			return slices.Delete(d, 1, 2)
		}, 0, "D2=data KEY=install-media OTHER=unknown SYS=system"},
		{"cloned data disk: the clone", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			return append(d, inventory.Disk{Path: "/dev/vdd", Serial: "CLONE", FS: d[2].FS})
		}, 1, "CLONE=data D1=data D2=unknown KEY=install-media OTHER=unknown SYS=system"},
		{"unreadable version: set aside", func(d []inventory.Disk, r mapReader) []inventory.Disk {
			r["/dev/vda1"]["etc/camrec/version"] = &fstest.MapFile{Data: []byte("garbage\n")}
			return d
		}, 0, "D1=unknown D2=unknown KEY=install-media OTHER=unknown SYS=unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disks, r := smallLayout()
			disks = tc.change(disks, r)
			s := &script{answers: []int{tc.answer}}
			res, err := Assign(disks, manifest(t), r, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.questions) != 1 {
				t.Errorf("%d questions asked: %q", len(s.questions), s.questions)
			}
			if got := roleTable(res); got != tc.want {
				t.Errorf("roles %s, want %s", got, tc.want)
			}
		})
	}
}

func TestConsoleAsk(t *testing.T) {
	refusal := errors.New("refused")
	var out bytes.Buffer
	c := NewConsole(strings.NewReader("7\nabc\n2\n"), &out)
	i, err := c.Ask(refusal, "Which one?", []string{"vda", "vdb"})
	if err != nil || i != 1 {
		t.Errorf("Ask = %d, %v; want 1", i, err)
	}
	if !strings.Contains(out.String(), "2) vdb") || strings.Count(out.String(), "Which one?") != 3 {
		t.Errorf("console:\n%s", out.String())
	}
	if _, err := NewConsole(strings.NewReader("q\n"), &out).Ask(refusal, "?", []string{"a"}); !errors.Is(err, refusal) || !errors.Is(err, ErrOperatorQuit) {
		t.Errorf("q: %v", err)
	}
	if _, err := NewConsole(strings.NewReader(""), &out).Ask(refusal, "?", []string{"a"}); !errors.Is(err, refusal) {
		t.Errorf("end of input: %v", err)
	}
}
