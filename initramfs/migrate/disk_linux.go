package migrate

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// OpenTarget opens the system disk for writing, exclusively: it fails when
// any of its partitions is still mounted or held.
func OpenTarget(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s exclusively for writing: %w", path, err)
	}
	return f, nil
}

// Rescan asks the kernel to read the disk's partition table again.
func Rescan(disk *os.File) error {
	var err error
	for i := 0; i < 10; i++ {
		if err = unix.IoctlSetInt(int(disk.Fd()), unix.BLKRRPART, 0); !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("re-read the partition table of %s: %w", disk.Name(), err)
	}
	return nil
}

// Loop is a loop device showing a region of a disk.
type Loop struct {
	Path string
	f    *os.File
}

// AttachLoop makes a loop device over size bytes at offset of the file or
// device at path, so that a partition not yet in any table can be mounted.
func AttachLoop(path string, offset, size int64, readOnly bool) (*Loop, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return nil, fmt.Errorf("free loop device: %w", err)
	}
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	back, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	defer back.Close()
	dev := fmt.Sprintf("/dev/loop%d", n)
	var lf *os.File
	for i := 0; i < 50; i++ { // devtmpfs creates the node a moment later
		if lf, err = os.OpenFile(dev, flag, 0); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
	cfg.Info.Offset, cfg.Info.Sizelimit = uint64(offset), uint64(size)
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if readOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		lf.Close()
		return nil, fmt.Errorf("configure %s over %s at %d+%d: %w", dev, path, offset, size, err)
	}
	return &Loop{Path: dev, f: lf}, nil
}

// Detach releases the loop device (it goes once nothing mounts it).
func (l *Loop) Detach() error {
	unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_CLR_FD, 0)
	return l.f.Close()
}
