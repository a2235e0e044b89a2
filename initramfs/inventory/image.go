package inventory

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/passeur/passeur/initramfs/ptable"
)

// Image describes the disk image file at path as the rescue would see it
// were it a disk with kernel name name: its partitions where the kernel
// would find them (read from the image's table), each probed, the whole
// read through the same code as a real disk's. Path is the file; serial
// stands in for what the bus would report. It is how a host runs passeur's
// steps against disks that are files.
func Image(path, name, serial string) (Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return Disk{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Disk{}, err
	}
	const sector = 512
	c := Capture{
		"file:block/" + name + "/size":                     fmt.Sprintf("%d\n", fi.Size()/sector),
		"file:block/" + name + "/queue/logical_block_size": fmt.Sprintf("%d\n", sector),
	}
	var parts []string
	if t, err := ptable.Read(f, sector); err == nil && t != nil {
		for _, p := range t.Partitions {
			n := fmt.Sprintf("%s%d", name, p.Number)
			parts = append(parts, n)
			c["file:block/"+name+"/"+n+"/partition"] = fmt.Sprintf("%d\n", p.Number)
			c["file:block/"+name+"/"+n+"/start"] = fmt.Sprintf("%d\n", p.Start)
			c["file:block/"+name+"/"+n+"/size"] = fmt.Sprintf("%d\n", p.Sectors)
		}
	}
	c["dir:block/"+name] = strings.Join(parts, "\n") + "\n"
	open := func(dev string) (Device, error) {
		g, err := os.Open(path)
		if err != nil || dev == name {
			return g, err
		}
		start, err1 := readInt(c, "block/"+name+"/"+dev+"/start")
		size, err2 := readInt(c, "block/"+name+"/"+dev+"/size")
		if err1 != nil || err2 != nil {
			g.Close()
			return nil, fmt.Errorf("open %s: no such partition of %s", dev, name)
		}
		return struct {
			*io.SectionReader
			io.Closer
		}{io.NewSectionReader(g, start*sector, size*sector), g}, nil
	}
	d, err := Describe(c, open, name)
	if err != nil {
		return d, err
	}
	d.Path, d.Serial = path, serial
	for i := range d.Partitions {
		d.Partitions[i].Path = fmt.Sprintf("%s@%d", path, d.Partitions[i].Start)
	}
	return d, nil
}
