package ptable

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sfdiskDump is the part of `sfdisk --json` the tests compare with.
type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func makeDisk(t *testing.T, size int64, script string) string {
	t.Helper()
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed (build.sh installs it)")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return img
}

func dump(t *testing.T, img string) sfdiskDump {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	var d sfdiskDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func readFile(t *testing.T, img string) (*Table, error) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Read(f, 512)
}

func TestAgainstSfdisk(t *testing.T) {
	for name, script := range map[string]string{
		"gpt": "label: gpt\nsize=8MiB, type=U, name=esp\nsize=16MiB, type=L, name=\"camrec root\"\ntype=L, name=data\n",
		"dos": "label: dos\n,8MiB,c,*\n,16MiB,83\n,,83\n",
		// Logical partitions 5 to 7 in an extended partition at 2, with a
		// primary after it.
		"dos-logical": "label: dos\nstart=2048,size=16384,type=83\nstart=18432,size=81920,type=5\nstart=20480,size=8192,type=83\n" +
			"start=30720,size=8192,type=82\nstart=40960,size=40960,type=83\nstart=102400,type=83\n",
	} {
		t.Run(name, func(t *testing.T) {
			img := makeDisk(t, 64<<20, script)
			tab, err := readFile(t, img)
			if err != nil || tab == nil {
				t.Fatalf("Read = %v, %v", tab, err)
			}
			want := dump(t, img).PartitionTable
			if tab.Type != want.Label || !strings.EqualFold("0x"+tab.ID, want.ID) && !strings.EqualFold(tab.ID, want.ID) {
				t.Errorf("table %s %s, sfdisk says %s %s", tab.Type, tab.ID, want.Label, want.ID)
			}
			if len(tab.Partitions) != len(want.Partitions) {
				t.Fatalf("%d partitions, sfdisk says %d", len(tab.Partitions), len(want.Partitions))
			}
			for i, p := range tab.Partitions {
				w := want.Partitions[i]
				if p.Start != w.Start || p.Sectors != w.Size || !strings.EqualFold(p.Type, w.Type) || p.Name != w.Name {
					t.Errorf("partition %d = %+v, sfdisk says %+v", i+1, p, w)
				}
				if name == "gpt" && !strings.EqualFold(p.UUID, w.UUID) {
					t.Errorf("partition %d PARTUUID %s, sfdisk says %s", i+1, p.UUID, w.UUID)
				}
			}
			if name == "dos-logical" {
				for _, p := range tab.Partitions {
					if want := tab.ID + "-0" + strconv.Itoa(p.Number); p.UUID != want {
						t.Errorf("partition %d PARTUUID %s, want %s", p.Number, p.UUID, want)
					}
				}
			}
			if name == "dos" {
				out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "PTUUID", img).Output()
				if got := strings.TrimSpace(string(out)); got != tab.ID {
					t.Errorf("PTUUID %s, blkid says %s", tab.ID, got)
				}
				if !tab.Partitions[0].Bootable || tab.Partitions[1].Bootable {
					t.Error("bootable flags wrong")
				}
			}
		})
	}
}

func TestNoTable(t *testing.T) {
	img := filepath.Join(t.TempDir(), "blank.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	if tab, err := readFile(t, img); tab != nil || err != nil {
		t.Errorf("blank disk: Read = %+v, %v", tab, err)
	}
}

func TestDamagedGPTIsAnError(t *testing.T) {
	img := makeDisk(t, 16<<20, "label: gpt\n,,L\n")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xFF}, 512+60) // inside the disk GUID, covered by the header CRC
	f.Close()
	if _, err := readFile(t, img); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Errorf("damaged GPT: err = %v, want a CRC error", err)
	}
}

// TestHostileEBRChain: a chain of empty records, or one that loops, ends
// after a bounded number of reads.
func TestHostileEBRChain(t *testing.T) {
	img := makeDisk(t, 64<<20, "label: dos\nstart=2048,size=16384,type=83\nstart=18432,type=5\n")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Every sector of the extended partition an EBR with no partition
	// whose next link is the following sector.
	ebr := make([]byte, 512)
	ebr[510], ebr[511] = 0x55, 0xAA
	ebr[462+4] = 0x05
	for i := uint32(0); i < 4096; i++ {
		binary.LittleEndian.PutUint32(ebr[462+8:], i+1)
		binary.LittleEndian.PutUint32(ebr[462+12:], 1)
		f.WriteAt(ebr, int64(18432+i)*512)
	}
	reads := countingReader{r: f, size: 64 << 20}
	tab, err := Read(&reads, 512)
	if err != nil || tab == nil || len(tab.Partitions) != 2 {
		t.Fatalf("Read = %+v, %v", tab, err)
	}
	if reads.n > maxLogical+4 {
		t.Errorf("%d reads for a chain of empty records", reads.n)
	}
}

// countingReader counts the reads of a disk of size bytes, and the bytes
// they ask for.
type countingReader struct {
	r     io.ReaderAt
	size  int64
	n     int
	bytes int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.n++
	c.bytes += int64(len(p))
	return c.r.ReadAt(p, off)
}

func (c *countingReader) Size() int64 { return c.size }
