package efivar

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h (chattr +i).
const fsImmutable = 0x10

// mutable clears the immutable flag efivarfs sets on the file of a
// variable, for it to be written or removed; best effort, as elsewhere
// than efivarfs (tests) there is none.
func mutable(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsImmutable == 0 {
		return
	}
	unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutable))
}

// UEFI tells whether the kernel was started by UEFI firmware with its
// runtime services: only then may efivarfs be loaded (its init fails with
// ENODEV elsewhere).
func UEFI() bool {
	_, err := os.Stat("/sys/firmware/efi")
	return err == nil
}

// Known tells whether the running kernel knows efivarfs (built in, or its
// module loaded): /proc/filesystems lists it.
func Known() bool {
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[len(f)-1] == "efivarfs" {
			return true
		}
	}
	return false
}

// Mount mounts efivarfs on Dir, when the kernel was started by UEFI
// firmware with its runtime services and has efivarfs (loaded on demand
// by the caller); already mounted is not an error.
func Mount() error {
	if !UEFI() {
		return ErrNoEFI
	}
	err := unix.Mount("efivarfs", Dir, "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil && err != unix.EBUSY {
		return fmt.Errorf("%w: mount efivarfs: %v", ErrNoEFI, err)
	}
	return nil
}
