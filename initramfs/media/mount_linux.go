package media

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mount mounts the media's FAT filesystem dev read-write on dir: never a
// program run from it, and reading it changes nothing on it (FAT keeps
// access dates). A key that cannot be written is ErrReadOnly.
func Mount(dev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, dir, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME, ""); err != nil {
		if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("%w: mount %s read-write: %w", ErrReadOnly, dev, err)
		}
		return fmt.Errorf("mount the media %s read-write: %w", dev, err)
	}
	return nil
}
