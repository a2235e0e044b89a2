package migrate

import (
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/google/uuid"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/ptable"
)

// sector is the sector size filesystems are made with.
const sector = 512

// WriteTable writes the job's new partition table on disk: the bytes the
// job was made with (their hash is checked first), then synced. It
// is the last write of a job: until it is done the disk keeps its old
// table.
func (j *Job) WriteTable(disk *os.File) error {
	im, err := j.TableImage()
	if err != nil {
		return err
	}
	if sum := im.SHA256(); sum != j.TableSHA256 {
		return fmt.Errorf("%w: the table serializes to %s, the job was made with %s", ptable.ErrTable, sum, j.TableSHA256)
	}
	if err := im.WriteTo(disk); err != nil {
		return fmt.Errorf("write the partition table: %w", err)
	}
	return disk.Sync()
}

// wipeBytes is what is zeroed at the start of a partition before a
// filesystem is made in it: no old signature survives for blkid to find.
const wipeBytes = 1 << 20

// MakeFilesystem makes the empty filesystem of e (role empty) on disk at
// its place, labelled with its name; uuid is its filesystem UUID.
func MakeFilesystem(disk *os.File, e release.Extent, fsUUID string) error {
	if e.Filesystem != "ext4" {
		return fmt.Errorf("partition %s: passeur makes ext4 filesystems only, not %s", e.Name, e.Filesystem)
	}
	if _, err := disk.WriteAt(make([]byte, min(wipeBytes, e.Bytes)), e.Start); err != nil {
		return fmt.Errorf("wipe partition %s: %w", e.Name, err)
	}
	return makeExt4(disk, e.Start, e.Bytes, e.Name, fsUUID)
}

// makeExt4 makes an ext4 filesystem of size bytes at start on disk.
func makeExt4(disk *os.File, start, size int64, label, fsUUID string) error {
	u, err := uuid.Parse(fsUUID)
	if err != nil {
		return fmt.Errorf("filesystem uuid %q: %w", fsUUID, err)
	}
	if len(label) > 16 {
		label = label[:16]
	}
	if _, err := ext4.Create(file.New(disk, false), size, start, sector, &ext4.Params{UUID: &u, VolumeName: label}); err != nil {
		return fmt.Errorf("make ext4 %q at %d: %w", label, start, err)
	}
	return disk.Sync()
}

// FormatDisk makes one ext4 filesystem over the whole of a data disk the
// operator named, after zeroing its first MiB (any old table or
// signature) and its last (a backup GPT).
func FormatDisk(disk *os.File, size int64, label, fsUUID string) error {
	zero := make([]byte, min(wipeBytes, size))
	for _, at := range []int64{0, size - int64(len(zero))} {
		if _, err := disk.WriteAt(zero, at); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
	}
	return makeExt4(disk, 0, size, label, fsUUID)
}
