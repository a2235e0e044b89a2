package camrec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/fixture"
)

// Variant names an installed v7 system of the kinds found in the field.
type Variant string

// The variants.
const (
	// VariantA: MBR system disk, one ext4 data disk mounted by UUID.
	VariantA Variant = "a"
	// VariantB: the "small" layout, a GPT system disk with a data
	// partition on it, plus an ext4 data disk mounted by LABEL and an xfs
	// data disk mounted by UUID.
	VariantB Variant = "b"
	// VariantC: like A at version 7.12, which v8 must refuse to migrate.
	VariantC Variant = "c"
	// VariantD: the MBR disk many installers leave: root at partition 1,
	// swap at 2, the recordings partition at 3 (labelled nvr-data, outside
	// the release's data labels, mounted by UUID) ending 1 MiB before the
	// disk's end, or at its last sector with Options.DataToEnd; plus an
	// ext4 data disk mounted by UUID.
	VariantD Variant = "d"
	// VariantE: a GPT system disk whose data partition sits right after a
	// small root, in the way of camrec 8's layout: v8 must refuse it.
	VariantE Variant = "e"
)

// ReleaseVersion is the version of camrec v8 the expected reports name.
const ReleaseVersion = "8.0.0"

// Options tune the recordings of a fixture.
type Options struct {
	Seed              int64 // every byte and UUID of the fixture derives from it
	SegmentsPerCamera int   // default 30
	SegmentSize       int64 // bytes per segment file, default 256 KiB
	// SystemDiskSize is the system disk's size, default 512 MiB; its root
	// partition takes what the data partition (variant b) leaves.
	SystemDiskSize int64
	// Index is how the v1 index is left on the system disk: intact (""),
	// IndexMissing, IndexTruncated or IndexFlipped.
	Index IndexDamage
	// Strays puts files that are not recordings on the first volume: a
	// name that does not parse and a header that does not match its name.
	Strays bool
	// DataToEnd makes variant D's recordings partition run to the disk's
	// last sector, leaving no room for a backup GPT.
	DataToEnd bool
	// FirstDataVolumeSize sizes the volume on the first data disk (0: by
	// its recordings): room for the staging area of an update.
	FirstDataVolumeSize int64
	// Init is a program laid as the root's /sbin/init (camrec7d), so that
	// the old system can be booted; empty: the root holds no programs.
	Init string
	// Files are files a vendor copied onto the box's root: the path in
	// the root (/usr/local/bin/passeur) to the file on the host, laid with
	// its mode.
	Files map[string]string
}

// IndexDamage is what happened to a fixture's index.
type IndexDamage string

// The damages.
const (
	IndexMissing   IndexDamage = "missing"
	IndexTruncated IndexDamage = "truncated"
	IndexFlipped   IndexDamage = "flipped"
	// IndexPhantom lists one recording more than the volumes hold (one
	// deleted by hand on the old system): a valid index camrec 8 reports
	// a missing segment from, failing its health check.
	IndexPhantom IndexDamage = "phantom"
)

// StrayFiles are the files Options.Strays adds, relative to the volume.
var StrayFiles = []string{"cam01/2026-11-01/08/notes.txt", "cam01/2026-11-01/08/seg-77.cr"}

// Volume is a data volume of the v7 system.
type Volume struct {
	Mountpoint string
	FSType     string // ext4 or xfs
	Label      string
	UUID       string
	FstabSpec  string // how /etc/fstab names it: UUID=... or LABEL=...
	Cameras    []string
	// Disk is the index of the data disk holding it in Appliance.Data, or
	// -1 for a partition of the system disk.
	Disk int
	// Size is the filesystem's size; 0 sizes it by its recordings.
	Size int64
}

// Appliance is an installed camrec v7, as disk images.
type Appliance struct {
	Variant  Variant
	Version  string
	System   fixture.Disk
	Data     []fixture.Disk
	Volumes  []Volume
	Config   Config
	Segments []Segment
	RootUUID string
	// Expected is what camrec v8 must report after a faithful migration.
	Expected Report
}

// Disks lists the system disk then the data disks, for the harness.
func (a *Appliance) Disks() []qemu.Disk {
	return fixture.QEMU(append([]fixture.Disk{a.System}, a.Data...))
}

// uuidFor derives a stable UUID from the fixture's seed and a name.
func uuidFor(seed int64, name string) string {
	return release.StableUUID(fmt.Sprintf("%d/%s", seed, name))
}

// BuildV7 builds, in dir, the disks of an installed camrec v7 of variant v
// with the host's tools, the way the vendor's installer did, and writes
// dir/expected-health.json: what camrec 8 must report after a faithful
// migration.
func BuildV7(dir string, v Variant, o Options) (*Appliance, error) {
	if o.SegmentsPerCamera == 0 {
		o.SegmentsPerCamera = 30
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = 256 << 10
	}
	if o.SystemDiskSize == 0 {
		o.SystemDiskSize = 512 << 20
	}
	a := &Appliance{Variant: v, Version: "7.14.0.3", RootUUID: uuidFor(o.Seed, "root")}
	a.Config = Config{Site: "Entrepôt Nord", RetentionDays: 30, Cameras: []Camera{
		{ID: "cam01", Name: "Quai 1", URL: "rtsp://10.1.1.11/stream1"},
		{ID: "cam02", Name: "Quai 2", URL: "rtsp://10.1.1.12/stream1"},
		{ID: "cam03", Name: "Parking", URL: "rtsp://10.1.1.13/stream1"},
	}}
	u := func(n string) string { return uuidFor(o.Seed, n) }
	switch v {
	case VariantA, VariantC:
		if v == VariantC {
			a.Version = "7.12.0.4"
		}
		a.Volumes = []Volume{{Mountpoint: "/srv/recordings/d1", FSType: "ext4", Label: "rec-a", UUID: u("d1"), Cameras: []string{"cam01", "cam02", "cam03"}, Disk: 0}}
		a.Volumes[0].FstabSpec = "UUID=" + a.Volumes[0].UUID
	case VariantB:
		a.Volumes = []Volume{
			{Mountpoint: "/srv/recordings/local", FSType: "ext4", Label: "camrec-data", UUID: u("local"), Cameras: []string{"cam01"}, Disk: -1},
			{Mountpoint: "/srv/recordings/d1", FSType: "ext4", Label: "rec-b", UUID: u("d1"), FstabSpec: "LABEL=rec-b", Cameras: []string{"cam02"}, Disk: 0},
			{Mountpoint: "/srv/recordings/d2", FSType: "xfs", Label: "rec-xfs", UUID: u("d2"), Cameras: []string{"cam03"}, Disk: 1},
		}
		a.Volumes[0].FstabSpec = "UUID=" + a.Volumes[0].UUID
		a.Volumes[2].FstabSpec = "UUID=" + a.Volumes[2].UUID
	case VariantD:
		a.Volumes = []Volume{
			{Mountpoint: "/srv/recordings/local", FSType: "ext4", Label: "nvr-data", UUID: u("local"), Cameras: []string{"cam01", "cam02"}, Disk: -1},
			{Mountpoint: "/srv/recordings/d1", FSType: "ext4", Label: "rec-d1", UUID: u("d1"), Cameras: []string{"cam03"}, Disk: 0},
		}
		a.Volumes[0].Size = legacyData(o)
	case VariantE:
		a.Volumes = []Volume{{Mountpoint: "/srv/recordings/local", FSType: "ext4", Label: "camrec-data", UUID: u("local"), Cameras: []string{"cam01", "cam02", "cam03"}, Disk: -1, Size: 300 << 20}}
	default:
		return nil, fmt.Errorf("camrec: unknown variant %q", v)
	}
	for i := range a.Volumes {
		if a.Volumes[i].FstabSpec == "" {
			a.Volumes[i].FstabSpec = "UUID=" + a.Volumes[i].UUID
		}
	}

	images := map[string]string{} // volume mount point -> filesystem image
	for i, vol := range a.Volumes {
		img, segs, err := buildVolume(dir, i, vol, o)
		if err != nil {
			return nil, err
		}
		images[vol.Mountpoint] = img
		a.Segments = append(a.Segments, segs...)
	}
	Sort(a.Segments)
	root, err := a.buildRoot(dir, o.Index, o.Init, o.Files)
	if err != nil {
		return nil, err
	}
	if err := a.assemble(dir, root, images, o.Seed, o.SystemDiskSize); err != nil {
		return nil, err
	}
	a.Expected = Report{Product: "camrec", Version: ReleaseVersion, Cameras: len(a.Config.Cameras), SegmentsIndexed: len(a.Segments), OK: true}
	for _, s := range a.Segments {
		a.Expected.Bytes += s.Size
	}
	for _, vol := range a.Volumes {
		a.Expected.Volumes = append(a.Expected.Volumes, vol.UUID)
	}
	sort.Strings(a.Expected.Volumes)
	exp, err := json.MarshalIndent(a.Expected, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "expected-health.json"), append(exp, '\n'), 0o644); err != nil {
		return nil, err
	}
	// Only the disks stay: the staging trees and filesystem images go.
	for _, p := range []string{"root", "root.fs", "vol0", "vol1", "vol2", "vol0.fs", "vol1.fs", "vol2.fs"} {
		os.RemoveAll(filepath.Join(dir, p))
	}
	return a, nil
}

// buildVolume writes the recordings of a volume into a staging tree and
// makes its filesystem image from it.
func buildVolume(dir string, i int, vol Volume, o Options) (string, []Segment, error) {
	tree := filepath.Join(dir, fmt.Sprintf("vol%d", i))
	var segs []Segment
	var total int64
	start := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	for _, cam := range vol.Cameras {
		for k := 0; k < o.SegmentsPerCamera; k++ {
			t := start.Add(time.Duration(k) * SegmentDuration)
			rel := RelPath(cam, t)
			p := filepath.Join(tree, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", nil, err
			}
			if err := os.WriteFile(p, Content(cam, t, o.SegmentSize, o.Seed), 0o644); err != nil {
				return "", nil, err
			}
			segs = append(segs, Segment{Camera: cam, Start: t, Path: vol.Mountpoint + "/" + rel, Size: o.SegmentSize})
			total += o.SegmentSize
		}
	}
	if o.Strays && i == 0 {
		os.WriteFile(filepath.Join(tree, StrayFiles[0]), []byte("call the installer back\n"), 0o644)
		os.WriteFile(filepath.Join(tree, StrayFiles[1]), []byte("CAMREC-SEG1 cam01 0\n"), 0o644)
	}
	img := filepath.Join(dir, fmt.Sprintf("vol%d.fs", i))
	size := roundMiB(total*3/2 + 32<<20)
	if vol.Size > 0 {
		size = vol.Size
	}
	if vol.Disk == 0 && o.FirstDataVolumeSize > 0 {
		size = o.FirstDataVolumeSize
	}
	var err error
	switch vol.FSType {
	case "ext4":
		err = mkext4(img, size, vol.Label, vol.UUID, tree)
	case "xfs":
		err = mkxfs(img, max(size, 320<<20), vol.Label, vol.UUID, tree)
	}
	return img, segs, err
}

func roundMiB(n int64) int64 { return (n + 1<<20 - 1) >> 20 << 20 }

// buildRoot makes the v7 root filesystem image.
func (a *Appliance) buildRoot(dir string, damage IndexDamage, init string, copied map[string]string) (string, error) {
	tree := filepath.Join(dir, "root")
	var conf, index, fstab bytes.Buffer
	if err := WriteConfigV7(&conf, a.Config); err != nil {
		return "", err
	}
	indexed := a.Segments
	if damage == IndexPhantom {
		last := a.Segments[len(a.Segments)-1]
		last.Start = last.Start.Add(SegmentDuration)
		last.Path = strings.TrimSuffix(last.Path, RelPath(last.Camera, a.Segments[len(a.Segments)-1].Start)) + RelPath(last.Camera, last.Start)
		indexed = append(append([]Segment(nil), a.Segments...), last)
	}
	if err := WriteIndexV1(&index, indexed); err != nil {
		return "", err
	}
	fmt.Fprintf(&fstab, "# /etc/fstab written by the camrec 7 installer\nUUID=%s / ext4 errors=remount-ro 0 1\n", a.RootUUID)
	for _, v := range a.Volumes {
		fmt.Fprintf(&fstab, "%s %s %s defaults,nofail 0 2\n", v.FstabSpec, v.Mountpoint, v.FSType)
	}
	files := map[string]string{
		ConfigV7File:                  conf.String(),
		VersionFile:                   "camrec " + a.Version + "\n",
		IndexV1File:                   index.String(),
		"/etc/fstab":                  fstab.String(),
		"/etc/hostname":               "camrec-" + string(a.Variant) + "\n",
		"/etc/os-release":             "PRETTY_NAME=\"Ubuntu 20.04.6 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"20.04\"\n",
		"/var/log/camrec/camrecd.log": "camrecd started\n",
	}
	switch idx := files[IndexV1File]; damage {
	case IndexMissing:
		delete(files, IndexV1File)
	case IndexTruncated:
		files[IndexV1File] = idx[:len(idx)*2/3]
	case IndexFlipped:
		b := []byte(idx)
		b[len(b)/2] ^= 0x04
		files[IndexV1File] = string(b)
	}
	for p, content := range files {
		full := filepath.Join(tree, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "tmp", "home", "proc", "sys", "dev", "run"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	if init != "" {
		prog, err := os.ReadFile(init)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tree, "sbin/init"), prog, 0o755); err != nil {
			return "", err
		}
	}
	for to, from := range copied {
		data, err := os.ReadFile(from)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(from)
		if err != nil {
			return "", err
		}
		full := filepath.Join(tree, to)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, data, st.Mode().Perm()); err != nil {
			return "", err
		}
	}
	for _, v := range a.Volumes {
		os.MkdirAll(filepath.Join(tree, v.Mountpoint), 0o755)
	}
	img := filepath.Join(dir, "root.fs")
	return img, mkext4(img, 96<<20, "camrec-root", a.RootUUID, tree)
}

func mkext4(img string, size int64, label, uuid, tree string) error {
	if err := fixture.Blank(img, size); err != nil {
		return err
	}
	_, err := fixture.Run("", "mkfs.ext4", "-q", "-F", "-L", label, "-U", uuid, "-E", "root_owner=0:0,hash_seed="+uuid, "-d", tree, img)
	return err
}

// mkxfs makes an xfs image populated from tree through a protofile, the
// only way mkfs.xfs fills a filesystem without mounting it.
func mkxfs(img string, size int64, label, uuid, tree string) error {
	if err := fixture.Blank(img, size); err != nil {
		return err
	}
	var proto strings.Builder
	proto.WriteString("camrec\n0 0\nd--755 0 0\n")
	var walk func(dir, indent string) error
	walk = func(dir, indent string) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() {
				fmt.Fprintf(&proto, "%s%s d--755 0 0\n", indent, e.Name())
				if err := walk(p, indent+" "); err != nil {
					return err
				}
				fmt.Fprintf(&proto, "%s$\n", indent)
			} else {
				fmt.Fprintf(&proto, "%s%s ---644 0 0 %s\n", indent, e.Name(), p)
			}
		}
		return nil
	}
	if err := walk(tree, " "); err != nil {
		return err
	}
	proto.WriteString("$\n")
	pf := img + ".proto"
	if err := os.WriteFile(pf, []byte(proto.String()), 0o644); err != nil {
		return err
	}
	defer os.Remove(pf)
	_, err := fixture.Run("", "mkfs.xfs", "-q", "-f", "-L", label, "-m", "uuid="+uuid, "-p", pf, img)
	return err
}

// part is a partition to lay on a disk image.
type part struct {
	image  string // filesystem image written at its start
	size   int64  // the partition's size, at least the image's
	script string // sfdisk fields after start and size
}

// partitioned writes a disk image of diskSize bytes (0: just large enough)
// with an sfdisk table and the partitions' filesystem images at their
// places.
func partitioned(disk string, diskSize int64, header string, parts []part) error {
	var total int64 = 1 << 20
	for _, p := range parts {
		total += roundMiB(p.size)
	}
	if diskSize == 0 {
		diskSize = total + 1<<20
	}
	if total+1<<20 > diskSize {
		return fmt.Errorf("camrec: partitions of %d bytes do not fit a disk of %d", total, diskSize)
	}
	if err := fixture.Blank(disk, diskSize); err != nil {
		return err
	}
	script := header
	start := int64(1 << 20)
	for _, p := range parts {
		script += fmt.Sprintf("start=%d, size=%d, %s\n", start/512, roundMiB(p.size)/512, p.script)
		if _, err := fixture.Run("", "dd", "if="+p.image, "of="+disk, "bs=1M", fmt.Sprintf("seek=%d", start>>20), "conv=notrunc,sparse", "status=none"); err != nil {
			return err
		}
		start += roundMiB(p.size)
	}
	_, err := fixture.Run(script, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk)
	return err
}

// assemble lays the filesystem images onto the system and data disks.
func (a *Appliance) assemble(dir, root string, images map[string]string, seed, sysSize int64) error {
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }
	sys := filepath.Join(dir, "system.img")
	labelID := fmt.Sprintf("0x%s", uuidFor(seed, "mbr")[:8])
	// The root partition takes the disk, as the vendor's installer did; GPT
	// keeps 1 MiB at the end for its backup.
	switch a.Variant {
	case VariantA, VariantC:
		rootSize := max(size(root), sysSize-2<<20)
		if err := partitioned(sys, sysSize, "label: dos\nlabel-id: "+labelID+"\n", []part{{root, rootSize, "type=83, bootable"}}); err != nil {
			return err
		}
	case VariantB:
		local := images["/srv/recordings/local"]
		rootSize := max(size(root), sysSize-2<<20-roundMiB(size(local)))
		header := "label: gpt\nlabel-id: " + uuidFor(seed, "gpt-system") + "\n"
		if err := partitioned(sys, sysSize, header, []part{
			{root, rootSize, "type=L, name=root, uuid=" + uuidFor(seed, "part-root")},
			{local, size(local), "type=L, name=data, uuid=" + uuidFor(seed, "part-data")},
		}); err != nil {
			return err
		}
	case VariantD:
		if err := legacyMBR(sys, sysSize, labelID, root, images["/srv/recordings/local"]); err != nil {
			return err
		}
	case VariantE:
		header := "label: gpt\nlabel-id: " + uuidFor(seed, "gpt-system") + "\n"
		if err := partitioned(sys, sysSize, header, []part{
			{root, 100 << 20, "type=L, name=root, uuid=" + uuidFor(seed, "part-root")},
			{images["/srv/recordings/local"], 300 << 20, "type=L, name=data, uuid=" + uuidFor(seed, "part-data")},
		}); err != nil {
			return err
		}
	}
	a.System = fixture.Disk{Disk: qemu.Disk{Path: sys, Bus: qemu.VirtioBlk, Serial: "CAMREC-SYS"}, Content: inventory.Partitioned}
	for _, vol := range a.Volumes {
		if vol.Disk < 0 {
			continue
		}
		img := images[vol.Mountpoint]
		disk := filepath.Join(dir, fmt.Sprintf("data%d.img", vol.Disk))
		d := fixture.Disk{Disk: qemu.Disk{Path: disk, Bus: qemu.VirtioBlk, Serial: fmt.Sprintf("CAMREC-DATA%d", vol.Disk+1)}}
		switch {
		case vol.FSType == "xfs":
			// A whole-disk filesystem, as some installers made them.
			if err := os.Rename(img, disk); err != nil {
				return err
			}
			d.Content = inventory.Filesystem
		case a.Variant == VariantB:
			header := "label: gpt\nlabel-id: " + uuidFor(seed, "gpt-"+vol.Mountpoint) + "\n"
			if err := partitioned(disk, 0, header, []part{{img, size(img), "type=L, name=recordings, uuid=" + uuidFor(seed, "part-"+vol.Mountpoint)}}); err != nil {
				return err
			}
			d.Content = inventory.Partitioned
		default:
			header := fmt.Sprintf("label: dos\nlabel-id: 0x%s\n", uuidFor(seed, "mbr-"+vol.Mountpoint)[:8])
			if err := partitioned(disk, 0, header, []part{{img, size(img), "type=83"}}); err != nil {
				return err
			}
			d.Content = inventory.Partitioned
		}
		a.Data = append(a.Data, d)
	}
	return nil
}

// Variant D's system disk: root, swap, then the recordings partition.
const (
	legacyRootMiB = 180
	legacySwapMiB = 48
	legacyDataAt  = (1 + legacyRootMiB + legacySwapMiB) << 20
)

// legacyData is the size of variant D's recordings partition: to the
// disk's last sector, or 1 MiB short of it.
func legacyData(o Options) int64 {
	if o.DataToEnd {
		return o.SystemDiskSize - legacyDataAt
	}
	return o.SystemDiskSize - legacyDataAt - 1<<20
}

// legacyMBR lays variant D's system disk as an installer does: sfdisk's
// MBR, mkswap on the swap partition, the filesystems at their places.
func legacyMBR(disk string, size int64, labelID, root, data string) error {
	if err := fixture.Blank(disk, size); err != nil {
		return err
	}
	dataSize := ""
	if st, err := os.Stat(data); err == nil && legacyDataAt+st.Size() < size {
		dataSize = fmt.Sprintf(", size=%d", st.Size()/512)
	}
	script := fmt.Sprintf("label: dos\nlabel-id: %s\nstart=2048, size=%d, type=83, bootable\nstart=%d, size=%d, type=82\nstart=%d%s, type=83\n",
		labelID, legacyRootMiB<<11, (1+legacyRootMiB)<<11, legacySwapMiB<<11, legacyDataAt/512, dataSize)
	if _, err := fixture.Run(script, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk); err != nil {
		return err
	}
	swap := disk + ".swap"
	defer os.Remove(swap)
	if err := fixture.Blank(swap, legacySwapMiB<<20); err != nil {
		return err
	}
	if _, err := fixture.Run("", "mkswap", "-q", swap); err != nil {
		return err
	}
	for _, w := range []struct {
		img string
		at  int64
	}{{root, 1 << 20}, {swap, (1 + legacyRootMiB) << 20}, {data, legacyDataAt}} {
		if _, err := fixture.Run("", "dd", "if="+w.img, "of="+disk, "bs=1M", fmt.Sprintf("seek=%d", w.at>>20), "conv=notrunc,sparse", "status=none"); err != nil {
			return err
		}
	}
	return nil
}
