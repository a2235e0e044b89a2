package staging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/roles"
	"golang.org/x/sys/unix"
)

// RunningDevice describes the block device major:minor of the running
// system, from /sys and its first bytes.
func RunningDevice(majmin string) (Device, error) {
	link, err := filepath.EvalSymlinks("/sys/dev/block/" + majmin)
	if err != nil {
		return Device{}, err
	}
	name := filepath.Base(link)
	disk := wholeDisk(link)
	d := Device{Path: "/dev/" + name, Disk: disk, Under: under(disk, 0)}
	if uevent, err := os.ReadFile(filepath.Join(link, "uevent")); err == nil {
		for _, l := range strings.Split(string(uevent), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				d.Path = "/dev/" + v
			}
		}
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return d, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return d, err
	}
	d.FS, err = fsprobe.Probe(f, size)
	return d, err
}

// wholeDisk is the kernel name of the disk of the block device whose
// /sys folder is link: its parent's when it is a partition.
func wholeDisk(link string) string {
	if _, err := os.Stat(filepath.Join(link, "partition")); err == nil {
		return filepath.Base(filepath.Dir(link))
	}
	return filepath.Base(link)
}

// under lists the disks beneath the disk name (device-mapper, md: its
// slaves, theirs in turn), or name itself.
func under(name string, depth int) []string {
	slaves, _ := os.ReadDir(filepath.Join("/sys/block", name, "slaves"))
	if len(slaves) == 0 || depth > 8 {
		return []string{name}
	}
	var out []string
	for _, s := range slaves {
		disk := s.Name()
		if link, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", disk)); err == nil {
			disk = wholeDisk(link)
		}
		out = append(out, under(disk, depth+1)...)
	}
	return out
}

// Attached is a staging area the rescue found: its volume mounted
// read-write, its image on a loop device, as install media.
type Attached struct {
	Volume string // the volume's device
	Loop   *migrate.Loop
	Size   int64
	dir    string
	folder string // the staging folder, in dir
}

// mountable are the filesystems a data volume holding a staging area may
// be: those the rescue's kernel mounts read-write.
var mountable = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "vfat": true}

// Attach finds the filesystem st names among disks, mounts it read-write
// on dir (nothing run from it, no access times), and attaches its folder's
// image on a loop device. The folder and the image must be a plain folder
// and a regular file inside the volume: no link is followed.
func Attach(disks []inventory.Disk, st config.Staged, dir string) (*Attached, error) {
	var devs, types []string
	for _, d := range disks {
		if d.FS != nil && d.FS.UUID == st.UUID {
			devs, types = append(devs, d.Path), append(types, d.FS.Type)
		}
		for _, p := range d.Partitions {
			if p.FS != nil && p.FS.UUID == st.UUID {
				devs, types = append(devs, p.Path), append(types, p.FS.Type)
			}
		}
	}
	switch {
	case len(devs) == 0:
		return nil, fmt.Errorf("%w: no filesystem has the UUID %s", ErrNoPlace, st.UUID)
	case len(devs) > 1: // a clone, a mirror's member: which is the box's is a guess
		return nil, fmt.Errorf("%w: %d filesystems have the UUID %s: %v", ErrNoPlace, len(devs), st.UUID, devs)
	}
	dev, typ := devs[0], types[0]
	if !mountable[typ] {
		return nil, fmt.Errorf("%w: %s (%s) is %s", ErrNoPlace, dev, st.UUID, typ)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	a := &Attached{Volume: dev, dir: dir, folder: st.Dir}
	// Checked first on a read-only mount that replays no journal: a
	// refusal writes nothing on the volume.
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME)
	if err := unix.Mount(dev, dir, typ, flags|unix.MS_RDONLY, roles.ReadOnlyOptions[typ]); err != nil {
		return nil, fmt.Errorf("mount the staging volume %s (%s) read-only: %w", dev, typ, err)
	}
	f, _, err := a.open(st.Dir, os.O_RDONLY)
	if err == nil {
		f.Close()
	}
	if uerr := unix.Unmount(dir, 0); uerr != nil {
		return nil, uerr
	}
	// A journal not yet replayed may hold what the look without it
	// missed (the box cut right after it staged): looked at again once
	// replayed.
	if err != nil && !(errors.Is(err, ErrBadImage) && replays(dev, typ)) {
		return nil, err
	}
	if err := unix.Mount(dev, dir, typ, flags, ""); err != nil {
		return nil, fmt.Errorf("mount the staging volume %s (%s) read-write: %w", dev, typ, err)
	}
	if err := a.attach(st.Dir); err != nil {
		unix.Unmount(dir, 0)
		return nil, err
	}
	return a, nil
}

// ReadRescue reads the file name of the rescue image staged beside the
// image (RescueDir), at most limit bytes: a regular file, no link
// followed.
func (a *Attached) ReadRescue(name string, limit int64) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return nil, fmt.Errorf("%q is no file name", name)
	}
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(a.folder+"/"+RescueDir+"/"+name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() > limit {
		return nil, fmt.Errorf("the staged rescue's %s is not a regular file of at most %d bytes (%v)", name, limit, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("the staged rescue's %s: more than %d bytes", name, limit)
	}
	return data, err
}

// replays reports whether mounting the filesystem dev of type typ
// read-write replays a journal: ext3/4 that need recovery; xfs, whose log
// cannot be told clean this cheaply, always.
func replays(dev, typ string) bool {
	switch typ {
	case "xfs":
		return true
	case "ext3", "ext4":
		f, err := os.Open(dev)
		if err != nil {
			return false
		}
		defer f.Close()
		var b [4]byte
		// s_feature_incompat, in the superblock at 1024: RECOVER is 0x4.
		if _, err := f.ReadAt(b[:], 1024+0x60); err != nil {
			return false
		}
		return binary.LittleEndian.Uint32(b[:])&0x4 != 0
	}
	return false
}

// open opens the image in folder on the mounted volume: a plain folder
// and a regular file of a sane size, no link followed.
func (a *Attached) open(folder string, flag int) (*os.File, int64, error) {
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		return nil, 0, err
	}
	defer root.Close()
	if st, err := root.Lstat(folder); err != nil || !st.IsDir() {
		return nil, 0, fmt.Errorf("%w: %s on %s is not a folder (%v)", ErrBadImage, folder, a.Volume, err)
	}
	name := folder + "/" + ImageFile
	st, err := root.Lstat(name)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadImage, err)
	}
	if !st.Mode().IsRegular() || st.Size() < MinImage || st.Size() > MaxImage {
		return nil, 0, fmt.Errorf("%w: %s on %s (%s, %d bytes)", ErrBadImage, name, a.Volume, st.Mode().Type(), st.Size())
	}
	f, err := root.OpenFile(name, flag|unix.O_NOFOLLOW, 0)
	return f, st.Size(), err
}

func (a *Attached) attach(folder string) error {
	f, size, err := a.open(folder, os.O_RDWR)
	if err != nil {
		return err
	}
	defer f.Close()
	if a.Loop, err = migrate.AttachLoop(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), 0, size, false); err != nil {
		return err
	}
	a.Size = size
	return nil
}

// Clean removes the staged releases from the attached image: after the
// new system's health report is OK, they are not needed again. The
// backup, the journal and the run's log stay until they are uploaded.
func Clean(mediaRoot string) error {
	entries, err := os.ReadDir(filepath.Join(mediaRoot, medialayout.ReleasesDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(mediaRoot, medialayout.ReleasesDir, e.Name())))
	}
	errs = append(errs, os.Remove(filepath.Join(mediaRoot, StagedFile)))
	if errors.Is(errs[len(errs)-1], fs.ErrNotExist) {
		errs = errs[:len(errs)-1]
	}
	return errors.Join(errs...)
}

// Close detaches the image and unmounts the volume.
func (a *Attached) Close() error {
	var errs []error
	if a.Loop != nil {
		errs = append(errs, a.Loop.Detach())
		a.Loop = nil
	}
	unix.Sync()
	if err := unix.Unmount(a.dir, 0); err != nil {
		errs = append(errs, fmt.Errorf("unmount the staging volume %s: %w", a.Volume, err))
		unix.Unmount(a.dir, unix.MNT_DETACH)
	}
	return errors.Join(errs...)
}
