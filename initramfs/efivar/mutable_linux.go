package efivar

import (
	"fmt"
	"os"

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

// Mount mounts efivarfs on Dir, when the kernel was started by UEFI
// firmware with its runtime services (/sys/firmware/efi) and has efivarfs
// (the board's modules load it); already mounted is not an error.
func Mount() error {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return ErrNoEFI
	}
	err := unix.Mount("efivarfs", Dir, "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil && err != unix.EBUSY {
		return fmt.Errorf("%w: mount efivarfs: %v", ErrNoEFI, err)
	}
	return nil
}
