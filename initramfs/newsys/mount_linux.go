package newsys

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/u-root/u-root/pkg/boot"
	"github.com/u-root/u-root/pkg/boot/bls"
	"golang.org/x/sys/unix"
)

// Loop mounts through a loop device over the extent: the kernel's way, in
// the rescue.
type Loop struct{}

// Mount implements Mounter.
func (Loop) Mount(disk string, start, size int64, fstype, dir string, readOnly bool) (func() error, error) {
	l, err := migrate.AttachLoop(disk, start, size, readOnly)
	if err != nil {
		return nil, err
	}
	flags, data := uintptr(unix.MS_NOSUID|unix.MS_NODEV), ""
	if readOnly {
		flags |= unix.MS_RDONLY
		if fstype == "ext4" {
			data = "noload" // never replay a journal on a read
		}
	}
	if err := unix.Mount(l.Path, dir, fstype, flags, data); err != nil {
		l.Detach()
		mode := "read-write"
		if readOnly {
			mode = "read-only"
		}
		return nil, fmt.Errorf("mount %s (%s) %s: %w", l.Path, fstype, mode, err)
	}
	return func() error {
		unix.Sync()
		return errors.Join(unix.Unmount(dir, 0), l.Detach())
	}, nil
}

// LoadBootEntry finds the default Boot Loader Specification entry on the
// new ESP and loads its kernel and initrd for kexec (boot.Execute).
func (s System) LoadBootEntry(log interface{ Printf(string, ...any) }) (*boot.LinuxImage, error) {
	umount, err := s.MountESP(true)
	if err != nil {
		return nil, err
	}
	defer umount()
	imgs, err := bls.ScanBLSEntries(log, s.Path(ESPDir), nil, "")
	if err != nil {
		return nil, err
	}
	// The rescue a staged run laid there (the way back) is never the new
	// system, were it left behind: u-root ranks entries by name only.
	imgs = slices.DeleteFunc(imgs, func(img boot.OSImage) bool {
		li, ok := img.(*boot.LinuxImage)
		return ok && strings.HasPrefix(li.Name, RescueTitle)
	})
	if len(imgs) == 0 {
		return nil, fmt.Errorf("no boot entry on the new ESP but the rescue's")
	}
	li, ok := imgs[0].(*boot.LinuxImage)
	if !ok {
		return nil, fmt.Errorf("boot entry %s is not a Linux kernel", imgs[0].Label())
	}
	if err := li.Load(boot.WithLogger(log)); err != nil {
		return nil, fmt.Errorf("load %s: %w", li.Label(), err)
	}
	return li, nil
}
