package usbkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/medialayout"
	"golang.org/x/sys/unix"
)

// keySizes are the sizes keys are sold at, and odd ones. Sparse files:
// all of them take a few seconds.
var keySizes = []struct {
	name string
	size int64
}{
	{"256MiB", 256 << 20}, {"300MiB", 300 << 20}, {"512MiB", 512 << 20}, {"1000MiB", 1000 << 20},
	{"1GiB", 1 << 30}, {"2GiB", 2 << 30}, {"3GiB+1MiB", 3<<30 + 1<<20}, {"4GiB", 4 << 30},
	{"7.5GiB", 15 << 29}, {"8GiB", 8 << 30}, {"16GiB", 16 << 30}, {"32GiB", 32 << 30}, {"64GiB", 64 << 30},
}

// TestImageEverySize makes the key image at every common size, as sparse
// files, and checks each with the canonical tools: sfdisk --json sees the
// GPT and its one EFI system partition from 1 MiB to 1 MiB before the end,
// fsck.vfat -n finds the FAT32 in it clean and inside the partition, and
// mtools reads the tree back. The 2 GiB key (the default of passeur key)
// once panicked in fat.Fixup, as did 3 GiB + 1 MiB and 32 GiB.
func TestImageEverySize(t *testing.T) {
	tool(t, "sfdisk", "fsck.vfat", "mtype")
	c := content(t)
	for _, tc := range keySizes {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "key.img")
			if err := Image(img, tc.size, c); err != nil {
				t.Fatal(err)
			}
			part := tc.size/(1<<20)*(1<<20) - 2<<20
			checkTable(t, img, tc.size, part)
			p := extract(t, img, 1<<20, part)
			if out, err := exec.Command("fsck.vfat", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("fsck.vfat -n: %v\n%s", err, out)
			}
			for path, want := range map[string]string{"/passeur/media.json": medialayout.MarkerData, "/passeur/vmlinuz": "kernel", "/releases/camrec-8.0.0/manifest.json": `"product": "camrec"`} {
				if out, err := exec.Command("mtype", "-i", p, "::"+path).CombinedOutput(); err != nil || !strings.Contains(string(out), want) {
					t.Errorf("%s on the key: %v\n%s", path, err, out)
				}
			}
		})
	}
}

// checkTable checks the image's GPT as sfdisk --json reads it.
func checkTable(t *testing.T, img string, size, part int64) {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var got struct {
		PartitionTable struct {
			Label      string `json:"label"`
			LastLBA    int64  `json:"lastlba"`
			Partitions []struct {
				Start, Size int64
				Type, Name  string
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	pt := got.PartitionTable
	want := fmt.Sprintf("gpt, last LBA %d, 1 partition at 2048 of %d sectors, type C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name passeur", size/512-34, part/512)
	if len(pt.Partitions) != 1 {
		t.Fatalf("sfdisk --json: want %s, got\n%s", want, out)
	}
	p := pt.Partitions[0]
	if g := fmt.Sprintf("%s, last LBA %d, 1 partition at %d of %d sectors, type %s, name %s", pt.Label, pt.LastLBA, p.Start, p.Size, strings.ToUpper(p.Type), p.Name); g != want {
		t.Errorf("sfdisk --json:\n got %s\nwant %s", g, want)
	}
}

// extract copies the n bytes of img from off into a sparse file of their
// own, reading only the extents that hold data (SEEK_DATA, SEEK_HOLE):
// fsck.vfat takes no offset, and a 64 GiB key is mostly holes.
func extract(t *testing.T, img string, off, n int64) string {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), "part.img")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(n); err != nil {
		t.Fatal(err)
	}
	fd := int(in.Fd())
	for at := off; at < off+n; {
		data, err := unix.Seek(fd, at, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || data >= off+n {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		hole = min(hole, off+n)
		if _, err := io.Copy(io.NewOffsetWriter(out, data-off), io.NewSectionReader(in, data, hole-data)); err != nil {
			t.Fatal(err)
		}
		at = hole
	}
	return p
}

// TestImageRefusesSize: a size no key image can be made at is refused by
// name, never a panic, and no image is left behind.
func TestImageRefusesSize(t *testing.T) {
	c := content(t)
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"65MiB", 65 << 20}, {"not whole sectors", 1<<30 + 100}, {"zero", 0}, {"negative", -1 << 30},
		{"300GiB (go-diskfs's FAT sectors overflow)", 300 << 30}, {"3TiB (beyond FAT32)", 3 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "key.img")
			if err := Image(img, tc.size, c); !errors.Is(err, ErrKeySize) {
				t.Errorf("Image of %d bytes = %v, want ErrKeySize", tc.size, err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(img)); len(ents) != 0 {
				t.Errorf("files left behind: %v", ents)
			}
		})
	}
	if err := Image(filepath.Join(t.TempDir(), "key.img"), 300<<30, c); !errors.Is(err, fat.ErrSize) {
		t.Errorf("300 GiB: %v, want fat.ErrSize within", err)
	}
}
