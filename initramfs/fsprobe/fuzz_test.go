package fsprobe

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// disk is a device of size bytes holding head at 0 and high at 64 KiB,
// zeros elsewhere: the regions the probers read (testdata/mkseeds.go).
type disk struct {
	head, high []byte
	size       int64
	read       int64 // bytes asked for
}

func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	d.read += int64(len(p))
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), d.size-off))
	clear(p[:n])
	for _, r := range []struct {
		at int64
		b  []byte
	}{{0, d.head}, {0x10000, d.high}} {
		lo, hi := max(off, r.at), min(off+int64(n), r.at+int64(len(r.b)))
		if lo < hi {
			copy(p[lo-off:hi-off], r.b[lo-r.at:hi-r.at])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// seed is a filesystem made by its real mkfs (testdata/seeds) and what
// blkid said of it.
type seed struct {
	name       string
	head, high []byte
	blkid      map[string]string
	size       int64
}

func seeds(t testing.TB) []seed {
	t.Helper()
	files, _ := filepath.Glob("testdata/seeds/*.blkid")
	if len(files) == 0 {
		t.Fatal("no seeds in testdata/seeds")
	}
	var out []seed
	for _, f := range files {
		base := strings.TrimSuffix(f, ".blkid")
		s := seed{name: filepath.Base(base), blkid: map[string]string{}}
		s.head, _ = os.ReadFile(base + ".head")
		s.high, _ = os.ReadFile(base + ".high")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				s.blkid[k] = strings.ReplaceAll(v, `\ `, " ") // blkid -o export escapes spaces
			}
		}
		s.size, err = strconv.ParseInt(s.blkid["SIZE"], 10, 64)
		if err != nil {
			t.Fatalf("%s: SIZE: %v", f, err)
		}
		out = append(out, s)
	}
	return out
}

// TestSeeds probes the bytes kept of each real filesystem and compares
// with what blkid said of the whole image.
func TestSeeds(t *testing.T) {
	for _, s := range seeds(t) {
		fs, err := Probe(&disk{head: s.head, high: s.high, size: s.size}, s.size)
		if err != nil || fs == nil {
			t.Errorf("%s: Probe = %+v, %v; blkid says %v", s.name, fs, err, s.blkid)
			continue
		}
		version := ""
		if fs.Type == "vfat" {
			version = s.blkid["VERSION"]
		}
		if fs.Type != s.blkid["TYPE"] || fs.Label != s.blkid["LABEL"] || fs.UUID != s.blkid["UUID"] || fs.Version != version {
			t.Errorf("%s: Probe = %+v; blkid says %v", s.name, fs, s.blkid)
		}
	}
}

var (
	types    = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "jbd": true, "xfs": true, "btrfs": true, "squashfs": true, "swap": true, "vfat": true}
	uuidForm = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9A-F]{4}-[0-9A-F]{4})?$`)
)

// FuzzProbe probes a device holding head at 0 and high at 64 KiB, seeded
// with the superblocks of real filesystems: no panic, no more read than
// the superblocks, and what is found is a known type with a label of at
// most 256 bytes and a UUID in blkid's form.
func FuzzProbe(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.head, s.high, s.size)
	}
	f.Fuzz(func(t *testing.T, head, high []byte, size int64) {
		d := &disk{head: head[:min(len(head), 0x10000)], high: high[:min(len(high), 0x1000)], size: size}
		fs, err := Probe(d, size)
		if d.read > 128<<10 {
			t.Fatalf("Probe asked for %d bytes", d.read)
		}
		if err != nil || fs == nil {
			return
		}
		if !types[fs.Type] || len(fs.Label) > 256 || !uuidForm.MatchString(fs.UUID) {
			t.Fatalf("Probe = %+v", fs)
		}
		if v := fs.Version; fs.Type == "vfat" && v != "FAT12" && v != "FAT16" && v != "FAT32" || fs.Type != "vfat" && v != "" {
			t.Fatalf("Probe = %+v", fs)
		}
	})
}
