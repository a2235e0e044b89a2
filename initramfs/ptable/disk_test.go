package ptable

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A file testdata/disks/NAME.disk holds the sectors of a disk that are not
// zeros, as testdata/mkseeds.go keeps them from what sfdisk wrote: a line
// "size BYTES sector BYTES", then each sector as its LBA (8 bytes,
// little-endian) and its bytes. NAME.dump is sfdisk --dump of that disk.

// seedDisk is a disk file's content.
type seedDisk struct {
	name       string
	size       int64
	sectorSize int
	sectors    []byte // the records
	dump       string
	label, id  string
	partitions []dumpPartition
}

// dumpPartition is one partition line of sfdisk --dump.
type dumpPartition struct {
	Number      int
	Start, Size uint64
	Type, UUID  string
	Name        string
	Bootable    bool
}

func seedDisks(t testing.TB) []seedDisk {
	t.Helper()
	files, err := filepath.Glob("testdata/disks/*.disk")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed disks: %v", err)
	}
	var out []seedDisk
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head, rest, _ := bytes.Cut(b, []byte("\n"))
		d := seedDisk{name: strings.TrimSuffix(filepath.Base(f), ".disk"), sectors: rest}
		if _, err := fmt.Sscanf(string(head), "size %d sector %d", &d.size, &d.sectorSize); err != nil {
			t.Fatalf("%s: %q: %v", f, head, err)
		}
		dump, err := os.ReadFile(strings.TrimSuffix(f, ".disk") + ".dump")
		if err != nil {
			t.Fatal(err)
		}
		d.dump = string(dump)
		d.parseDump(t)
		out = append(out, d)
	}
	return out
}

// parseDump reads sfdisk --dump: the label, its id and each partition.
func (d *seedDisk) parseDump(t testing.TB) {
	sc := bufio.NewScanner(strings.NewReader(d.dump))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "label: "); ok {
			d.label = v
		}
		if v, ok := strings.CutPrefix(line, "label-id: "); ok {
			d.id = strings.ToLower(strings.TrimPrefix(v, "0x"))
		}
		node, fields, ok := strings.Cut(line, " : ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(node), "disk"), "p")) // diskp1 through a loop device
		if err != nil {
			t.Fatalf("%s: %q", d.name, line)
		}
		p := dumpPartition{Number: n}
		for f := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
			v = strings.TrimSpace(v)
			switch k {
			case "start":
				p.Start, _ = strconv.ParseUint(v, 10, 64)
			case "size":
				p.Size, _ = strconv.ParseUint(v, 10, 64)
			case "type":
				p.Type = strings.ToLower(v)
			case "uuid":
				p.UUID = strings.ToLower(v)
			case "name":
				p.Name = strings.Trim(v, `"`)
			case "bootable":
				p.Bootable = true
			}
		}
		d.partitions = append(d.partitions, p)
	}
}

// sparseDisk is the disk of size bytes holding the records of sectors of
// sectorSize bytes, zeros elsewhere. A last record cut short is padded
// with zeros; a record's LBA wraps around the disk.
func sparseDisk(size int64, sectorSize int, sectors []byte) (Image, int64) {
	s := int64(sectorSize)
	n := min(max(size/s, 2), 1<<40)
	var im Image
	for len(sectors) > 0 {
		rec := make([]byte, 8+sectorSize)
		k := copy(rec, sectors)
		sectors = sectors[k:]
		lba := int64(binary.LittleEndian.Uint64(rec) % uint64(n))
		im = append(im, Write{lba * s, rec[8:]})
	}
	return im, n * s
}
