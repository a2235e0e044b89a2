//go:build ignore

// mkseeds lays each real layout with sfdisk on a sparse file of its disk's
// size and keeps the sectors sfdisk wrote (every sector that is not zeros:
// the MBR, the GPT headers and entry arrays, the extended boot records) in
// testdata/disks/NAME.disk, and sfdisk --dump's view of it in
// testdata/disks/NAME.dump.
// Layouts of 4096-byte sectors are laid through a loop device of that
// sector size (root only).
//
//	go run testdata/mkseeds.go -layouts /work/shared/layouts -4k ../preflight/testdata/layouts
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

func main() {
	layouts := flag.String("layouts", "/work/shared/layouts", "folder of NAME.sfdisk and the README giving each disk's size")
	fourK := flag.String("4k", "../preflight/testdata/layouts", "folder holding 4k-*.sfdisk (4 GiB disks)")
	flag.Parse()
	readme, err := os.ReadFile(filepath.Join(*layouts, "README.md"))
	if err != nil {
		log.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| ([0-9]+)([GM]) \\|")
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		size := n << 30
		if m[3] == "M" {
			size = n << 20
		}
		lay(filepath.Join(*layouts, m[1]+".sfdisk"), m[1], size, 512)
	}
	more, _ := filepath.Glob(filepath.Join(*fourK, "4k-*.sfdisk"))
	for _, f := range more {
		lay(f, strings.TrimSuffix(filepath.Base(f), ".sfdisk"), 4<<30, 4096)
	}
}

func lay(script, name string, size int64, sectorSize int) {
	in, err := os.ReadFile(script)
	if err != nil {
		log.Fatal(err)
	}
	img := filepath.Join(os.TempDir(), "mkseeds-"+name+".img")
	defer os.Remove(img)
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		log.Fatal(err)
	}
	dev := img
	if sectorSize != 512 {
		out, err := exec.Command("losetup", "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), img).Output()
		if err != nil {
			log.Fatalf("losetup %s: %v", name, err)
		}
		dev = strings.TrimSpace(string(out))
		defer exec.Command("losetup", "-d", dev).Run()
	}
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev)
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("sfdisk %s: %v\n%s", name, err, out)
	}
	dump, err := exec.Command("sfdisk", "--dump", dev).Output()
	if err != nil {
		log.Fatalf("sfdisk --dump %s: %v", name, err)
	}
	dump = bytes.ReplaceAll(dump, []byte(dev), []byte("disk"))
	if err := os.WriteFile(filepath.Join("testdata", "disks", name+".dump"), dump, 0o644); err != nil {
		log.Fatal(err)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "size %d sector %d\n", size, sectorSize)
	f, err := os.Open(img)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	const seekData, seekHole = 3, 4
	sector := make([]byte, sectorSize)
	for at := int64(0); at < size; {
		data, err := f.Seek(at, seekData)
		if err != nil {
			break // no data after at
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			log.Fatal(err)
		}
		for off := data / int64(sectorSize) * int64(sectorSize); off < hole; off += int64(sectorSize) {
			if _, err := f.ReadAt(sector, off); err != nil {
				log.Fatal(err)
			}
			if !bytes.Equal(sector, make([]byte, sectorSize)) {
				out.Write(binary.LittleEndian.AppendUint64(nil, uint64(off/int64(sectorSize))))
				out.Write(sector)
			}
		}
		at = hole
	}
	if err := os.WriteFile(filepath.Join("testdata", "disks", name+".disk"), out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("%s: %d bytes", name, out.Len())
}
