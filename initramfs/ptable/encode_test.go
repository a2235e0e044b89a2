package ptable

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// encodeToFile writes t's image on a sparse file of g.Size bytes.
func encodeToFile(t *testing.T, tab *Table, g Geometry) string {
	t.Helper()
	im, err := tab.Encode(g)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(g.Size); err != nil {
		t.Fatal(err)
	}
	if err := im.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return img
}

// sameAsSfdisk checks that sfdisk reads tab from dev exactly and verifies
// it clean.
func sameAsSfdisk(t *testing.T, tab *Table, dev string) {
	t.Helper()
	if out, err := exec.Command("sfdisk", "--verify", dev).CombinedOutput(); err != nil || strings.Contains(string(out), "arning") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
	want := dump(t, dev).PartitionTable
	id := strings.TrimPrefix(strings.ToLower(want.ID), "0x")
	if want.Label != tab.Type || id != strings.ToLower(tab.ID) {
		t.Errorf("sfdisk says %s %s, encoded %s %s", want.Label, want.ID, tab.Type, tab.ID)
	}
	if len(want.Partitions) != len(tab.Partitions) {
		t.Fatalf("sfdisk sees %d partitions, encoded %d", len(want.Partitions), len(tab.Partitions))
	}
	for i, w := range want.Partitions {
		p := tab.Partitions[i]
		typ := strings.ToLower(p.Type)
		if tab.Type == "dos" {
			typ = strings.TrimLeft(typ, "0")
		}
		if w.Start != p.Start || w.Size != p.Sectors || strings.ToLower(w.Type) != typ || w.Name != p.Name {
			t.Errorf("partition %d: sfdisk says %+v, encoded %+v", i+1, w, p)
		}
		if tab.Type == "gpt" && !strings.EqualFold(w.UUID, p.UUID) {
			t.Errorf("partition %d: PARTUUID %s, encoded %s", i+1, w.UUID, p.UUID)
		}
	}
}

func TestEncodeReadBySfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed (build.sh installs it)")
	}
	const size = 700 << 20
	gptTab := &Table{Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{
		{Number: 1, Start: 2048, Sectors: 96 << 11, Type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a001", Name: "esp"},
		{Number: 2, Start: 98 << 11, Sectors: 64 << 11, Type: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", UUID: "0b6f4a56-2222-4e0e-8a55-0d7e3bd3a002", Name: "root"},
		{Number: 3, Start: 300 << 11, Sectors: size/512 - 34 - 300<<11, Type: "0fc63daf-8483-4772-8e79-3d69d8477de4", UUID: "0b6f4a56-3333-4e0e-8a55-0d7e3bd3a003", Name: "données"},
	}}
	dosTab := &Table{Type: "dos", ID: "7c0ffee7", Partitions: []Entry{
		{Number: 1, Start: 2048, Sectors: 96 << 11, Type: "ef", Bootable: true},
		{Number: 2, Start: 98 << 11, Sectors: 64 << 11, Type: "83"},
		{Number: 3, Start: 300 << 11, Sectors: size/512 - 300<<11, Type: "83"}, // to the last sector
	}}
	for name, tab := range map[string]*Table{"gpt": gptTab, "dos": dosTab} {
		t.Run(name, func(t *testing.T) {
			img := encodeToFile(t, tab, Geometry{Size: size, SectorSize: 512})
			sameAsSfdisk(t, tab, img)
			back, err := readFile(t, img)
			if err != nil || back == nil {
				t.Fatalf("Read = %v, %v", back, err)
			}
			if err := tab.same(back); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestEncode4K lays a GPT and an MBR for 4096-byte logical sectors and has
// sfdisk read them through a loop device of that sector size (root only).
func TestEncode4K(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed")
	}
	const size = 256 << 20
	g := Geometry{Size: size, SectorSize: 4096}
	for _, tab := range []*Table{
		{Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e02", Partitions: []Entry{
			{Number: 1, Start: 256, Sectors: 16 << 8, Type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a011", Name: "esp"},
			{Number: 2, Start: 17 << 8, Sectors: size/4096 - 6 - 17<<8, Type: "0fc63daf-8483-4772-8e79-3d69d8477de4", UUID: "0b6f4a56-2222-4e0e-8a55-0d7e3bd3a012", Name: "data"},
		}},
		{Type: "dos", ID: "00c0ffee", Partitions: []Entry{
			{Number: 1, Start: 256, Sectors: 16 << 8, Type: "ef"},
			{Number: 2, Start: 17 << 8, Sectors: size/4096 - 17<<8, Type: "83"},
		}},
	} {
		t.Run(tab.Type, func(t *testing.T) {
			img := encodeToFile(t, tab, g)
			out, err := exec.Command("losetup", "--find", "--show", "--sector-size", "4096", "--partscan=false", img).CombinedOutput()
			if err != nil {
				out, err = exec.Command("losetup", "--find", "--show", "--sector-size", "4096", img).CombinedOutput()
			}
			if err != nil {
				t.Skipf("losetup: %v %s", err, out)
			}
			dev := strings.TrimSpace(string(out))
			defer exec.Command("losetup", "-d", dev).Run()
			sameAsSfdisk(t, tab, dev)
		})
	}
}

// TestEncodeRefusals names what a table cannot hold, before any byte.
func TestEncodeRefusals(t *testing.T) {
	g := Geometry{Size: 64 << 20, SectorSize: 512}
	esp := Entry{Number: 1, Start: 2048, Sectors: 2048, Type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a001"}
	last := g.Size / 512
	for name, tab := range map[string]*Table{
		"mbr partuuid in a gpt": {Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{esp,
			{Number: 3, Start: 8192, Sectors: 2048, Type: "0fc63daf-8483-4772-8e79-3d69d8477de4", UUID: "7C0FFEE7-03"}}},
		"gpt to the last sector": {Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{
			{Number: 1, Start: 2048, Sectors: uint64(last) - 2048, Type: esp.Type, UUID: esp.UUID}}},
		"overlap": {Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{esp,
			{Number: 2, Start: 3000, Sectors: 2048, Type: esp.Type, UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a002"}}},
		"five primaries": {Type: "dos", ID: "7c0ffee7", Partitions: []Entry{
			{Number: 1, Start: 2048, Sectors: 2048, Type: "83"}, {Number: 2, Start: 4096, Sectors: 2048, Type: "83"},
			{Number: 3, Start: 6144, Sectors: 2048, Type: "83"}, {Number: 4, Start: 8192, Sectors: 2048, Type: "83"},
			{Number: 5, Start: 10240, Sectors: 2048, Type: "83"}}},
		"gpt type in an mbr": {Type: "dos", ID: "7c0ffee7", Partitions: []Entry{{Number: 1, Start: 2048, Sectors: 2048, Type: esp.Type}}},
		"past the disk":      {Type: "dos", ID: "7c0ffee7", Partitions: []Entry{{Number: 1, Start: 2048, Sectors: uint64(last), Type: "83"}}},
		"bad disk id":        {Type: "dos", ID: "7c0ffee", Partitions: []Entry{{Number: 1, Start: 2048, Sectors: 2048, Type: "83"}}},
		// 2^55+4096 sectors of 512 bytes are 2^64 + 2 MiB bytes: wrapped
		// around, they would land inside the disk.
		"start past 2^64 bytes": {Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{
			{Number: 1, Start: 1<<55 + 4096, Sectors: 2048, Type: esp.Type, UUID: esp.UUID}}},
		"length past 2^64 bytes": {Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []Entry{
			{Number: 1, Start: 2048, Sectors: 1<<55 - 2048 + 4096, Type: esp.Type, UUID: esp.UUID}}},
	} {
		if _, err := tab.Encode(g); !errors.Is(err, ErrTable) {
			t.Errorf("%s: Encode = %v, want ErrTable", name, err)
		}
	}
}

// TestDOSImageWipesGPTHeaders: an MBR image zeroes the GPT headers'
// sectors, except one a partition holds.
func TestDOSImageWipesGPTHeaders(t *testing.T) {
	g := Geometry{Size: 64 << 20, SectorSize: 512}
	free := &Table{Type: "dos", ID: "7c0ffee7", Partitions: []Entry{{Number: 1, Start: 2048, Sectors: 4096, Type: "83"}}}
	full := &Table{Type: "dos", ID: "7c0ffee7", Partitions: []Entry{{Number: 1, Start: 2048, Sectors: uint64(g.Size/512) - 2048, Type: "83"}}}
	for tab, want := range map[*Table]string{free: "[[0 512] [512 1024] [67108352 67108864]]", full: "[[0 512] [512 1024]]"} {
		im, err := tab.Encode(g)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(im.Ranges()); got != want {
			t.Errorf("writes %s, want %s", got, want)
		}
	}
}
