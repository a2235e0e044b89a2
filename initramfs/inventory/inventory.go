// Package inventory lists the machine's block devices: bus, size, model,
// serial, partition table and filesystems, read from sysfs and from the
// devices' content. It only reads.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/ptable"
)

// Disk is one block device as found.
type Disk struct {
	Name       string      `json:"name"` // kernel name: vda, sda, nvme0n1
	Path       string      `json:"path"` // device node
	Bus        string      `json:"bus"`  // virtio-blk, virtio-scsi, sata, nvme, usb, scsi, mmc, virtual, unknown
	Size       int64       `json:"size"` // bytes
	SectorSize int         `json:"sector_size"`
	Model      string      `json:"model,omitempty"`
	Vendor     string      `json:"vendor,omitempty"`
	Serial     string      `json:"serial,omitempty"`
	WWID       string      `json:"wwid,omitempty"`
	Removable  bool        `json:"removable,omitempty"`
	ReadOnly   bool        `json:"read_only,omitempty"`
	Content    Content     `json:"content"`
	Table      *Table      `json:"table,omitempty"`
	FS         *fsprobe.FS `json:"fs,omitempty"` // filesystem on the whole disk
	Partitions []Partition `json:"partitions,omitempty"`
	// Errors are problems reading this disk; the rest of the inventory stands.
	Errors []string `json:"errors,omitempty"`
}

// Content says what the start of a disk holds.
type Content string

// The kinds of content.
const (
	Partitioned Content = "partitioned" // a partition table
	Filesystem  Content = "filesystem"  // a filesystem on the whole disk
	Blank       Content = "blank"       // zeros where a table or filesystem would be
	Unknown     Content = "unknown"     // data passeur does not recognise
)

// Table is a disk's partition table.
type Table struct {
	Type string `json:"type"` // dos or gpt
	ID   string `json:"id"`
}

// Partition is one partition of a disk.
type Partition struct {
	Name      string      `json:"name"`
	Path      string      `json:"path"`
	Number    int         `json:"number"`
	Start     int64       `json:"start"` // bytes from the start of the disk
	Size      int64       `json:"size"`  // bytes
	PartUUID  string      `json:"partuuid,omitempty"`
	PartLabel string      `json:"partlabel,omitempty"`
	PartType  string      `json:"parttype,omitempty"`
	FS        *fsprobe.FS `json:"fs,omitempty"`
}

// Device is an open block device (or a partition of one).
type Device interface {
	io.ReaderAt
	io.Closer
}

// Opener opens a device by kernel name ("vda", "vda1") for reading.
type Opener func(name string) (Device, error)

// Scan lists the disks sysfs knows, sorted by name, and reads each one's
// content through open. Loop and RAM disks, and devices of size zero (empty
// card readers, unused loop devices) are left out.
func Scan(sys SysFS, open Opener) ([]Disk, error) {
	names, err := sys.ReadDir("block")
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	sort.Strings(names)
	var disks []Disk
	for _, n := range names {
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
			continue
		}
		d, err := scanDisk(sys, n)
		if err != nil {
			return nil, err
		}
		if d.Size == 0 {
			continue
		}
		readContent(&d, sys, open)
		disks = append(disks, d)
	}
	return disks, nil
}

// Describe reads one block device as Scan would, whatever its kind: how
// the rescue system sees a loop device it made itself.
func Describe(sys SysFS, open Opener, name string) (Disk, error) {
	d, err := scanDisk(sys, name)
	if err != nil {
		return d, err
	}
	readContent(&d, sys, open)
	return d, nil
}

func readString(sys SysFS, name string) string {
	b, err := sys.ReadFile(name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(sys SysFS, name string) (int64, error) {
	s := readString(sys, name)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %q is not a number", name, s)
	}
	return v, nil
}

// scanDisk reads the sysfs attributes of block device n.
func scanDisk(sys SysFS, n string) (Disk, error) {
	base := "block/" + n
	d := Disk{Name: n, Path: "/dev/" + n}
	sectors, err := readInt(sys, base+"/size")
	if err != nil {
		return d, err
	}
	d.Size = sectors * 512 // sysfs counts 512-byte units whatever the device's sectors
	d.SectorSize = 512
	if ss, err := readInt(sys, base+"/queue/logical_block_size"); err == nil && ss > 0 {
		d.SectorSize = int(ss)
	}
	d.Removable = readString(sys, base+"/removable") == "1"
	d.ReadOnly = readString(sys, base+"/ro") == "1"
	link, _ := sys.ReadLink(base)
	d.Bus = busOf(link)
	d.Model = readString(sys, base+"/device/model")
	if d.Bus != "virtio-blk" { // virtio-blk shows the PCI vendor ID there
		d.Vendor = readString(sys, base+"/device/vendor")
	}
	d.Serial = serialOf(sys, base, link, d.Bus)
	d.WWID = readString(sys, base+"/wwid")
	if d.WWID == "" {
		d.WWID = readString(sys, base+"/device/wwid")
	}
	return d, nil
}

// busOf names the bus of a device from the sysfs path its block link points
// to, e.g. ../devices/pci0000:00/0000:00:03.0/virtio1/block/vda.
func busOf(link string) string {
	switch {
	case link == "":
		return "unknown"
	case strings.Contains(link, "/usb"):
		return "usb"
	case strings.Contains(link, "/nvme/"):
		return "nvme"
	case strings.Contains(link, "/ata"):
		return "sata"
	case strings.Contains(link, "/virtio") && strings.Contains(link, "/host"):
		return "virtio-scsi"
	case strings.Contains(link, "/virtio"):
		return "virtio-blk"
	case strings.Contains(link, "/mmc"):
		return "mmc"
	case strings.Contains(link, "/host"):
		return "scsi"
	case strings.Contains(link, "/virtual/"):
		return "virtual"
	}
	return "unknown"
}

// serialOf finds a device's serial number where its bus puts it.
func serialOf(sys SysFS, base, link, bus string) string {
	if s := readString(sys, base+"/serial"); s != "" { // virtio-blk
		return s
	}
	if s := readString(sys, base+"/device/serial"); s != "" { // nvme
		return s
	}
	if b, err := sys.ReadFile(base + "/device/vpd_pg80"); err == nil && len(b) > 4 { // SCSI, SATA through libata
		n := int(b[2])<<8 | int(b[3])
		if 4+n <= len(b) {
			if s := strings.TrimSpace(string(bytes.TrimRight(b[4:4+n], "\x00"))); s != "" {
				return s
			}
		}
	}
	if bus == "usb" {
		// The USB device is the parent of the interface ("2-1:1.0") on the path.
		parts := strings.Split(link, "/")
		for i, p := range parts {
			if strings.Contains(p, ":") && strings.Contains(p, "-") && i > 0 {
				rel := strings.Join(parts[:i], "/")
				return readString(sys, strings.TrimPrefix(strings.TrimPrefix(rel, "../"), "/sys/")+"/serial")
			}
		}
	}
	return ""
}

// readContent reads the partition table and filesystems of d.
func readContent(d *Disk, sys SysFS, open Opener) {
	fail := func(format string, a ...any) { d.Errors = append(d.Errors, fmt.Sprintf(format, a...)) }
	dev, err := open(d.Name)
	if err != nil {
		fail("open: %v", err)
		d.Content = Unknown
		return
	}
	defer dev.Close()

	tab, terr := ptable.Read(dev, d.SectorSize)
	if terr != nil {
		fail("partition table: %v", terr)
		if errors.Is(terr, ptable.ErrInvalidTable) { // whatever the kernel made of it, passeur never touches it
			d.Content = Unknown
			return
		}
	}
	parts := partitionsOf(sys, d.Name)
	if tab != nil || len(parts) > 0 {
		d.Content = Partitioned
		if tab != nil {
			d.Table = &Table{Type: tab.Type, ID: tab.ID}
		}
		for _, p := range parts {
			if tab != nil {
				for _, e := range tab.Partitions {
					if e.Number == p.Number {
						p.PartUUID, p.PartLabel, p.PartType = e.UUID, e.Name, e.Type
					}
				}
			}
			p.FS = probePart(d, p, open, fail)
			d.Partitions = append(d.Partitions, p)
		}
		return
	}
	fs, err := fsprobe.Probe(dev, d.Size)
	switch {
	case err != nil:
		fail("probe filesystem: %v", err)
		d.Content = Unknown
	case fs != nil:
		d.Content, d.FS = Filesystem, fs
	default:
		d.Content = blankOrUnknown(dev, d.Size)
	}
}

func probePart(d *Disk, p Partition, open Opener, fail func(string, ...any)) *fsprobe.FS {
	pd, err := open(p.Name)
	if err != nil {
		fail("open %s: %v", p.Name, err)
		return nil
	}
	defer pd.Close()
	fs, err := fsprobe.Probe(pd, p.Size)
	if err != nil {
		fail("probe filesystem on %s: %v", p.Name, err)
	}
	return fs
}

// partitionsOf lists the partitions sysfs shows under disk n.
func partitionsOf(sys SysFS, n string) []Partition {
	ents, _ := sys.ReadDir("block/" + n)
	var parts []Partition
	for _, e := range ents {
		if !strings.HasPrefix(e, n) {
			continue
		}
		base := "block/" + n + "/" + e
		num, err := readInt(sys, base+"/partition")
		if err != nil {
			continue
		}
		start, _ := readInt(sys, base+"/start")
		size, _ := readInt(sys, base+"/size")
		parts = append(parts, Partition{Name: e, Path: "/dev/" + e, Number: int(num), Start: start * 512, Size: size * 512})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Number < parts[j].Number })
	return parts
}

// blankOrUnknown tells a never-written disk from one holding data passeur
// does not recognise, by the first and last MiB.
func blankOrUnknown(r io.ReaderAt, size int64) Content {
	buf := make([]byte, 1<<20)
	for _, off := range []int64{0, max(0, size-int64(len(buf)))} {
		n, err := r.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return Unknown
		}
		if !allZero(buf[:n]) {
			return Unknown
		}
	}
	return Blank
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
