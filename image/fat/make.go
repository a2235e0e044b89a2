package fat

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// ErrSize refuses a size no FAT32 filesystem can be made at: too small to
// hold one, or too large for go-diskfs to lay out.
var ErrSize = errors.New("no FAT32 filesystem can be made at this size")

// File is a file to put on a FAT image: a host file's content, or Data.
type File struct {
	Path string // absolute, slash-separated
	From string
	Data []byte
}

// Make creates at img a FAT32 filesystem of size bytes labelled label,
// holding files and the (possibly empty) folders dirs, every time stamp
// set to stamp, and fixes it up so that fsck.fat finds it clean.
func Make(img string, size int64, label string, files []File, dirs []string, stamp time.Time) error {
	// Made beside and renamed: a refused size leaves what was at img.
	tmp := img + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	if err := MakeAt(f, 0, size, label, files, dirs, stamp); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, img)
}

// MakeAt is Make inside f, a disk image, from byte start on: the
// partition's extent. The filesystem may end a cluster or two before
// start+size (see create).
func MakeAt(f *os.File, start, size int64, label string, files []File, dirs []string, stamp time.Time) error {
	where := fmt.Sprintf("FAT image %s at %d", f.Name(), start)
	fs, err := create(f, start, size, label)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := fill(fs, files, dirs, stamp); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := Fixup(section{f, start}); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// create lays out an empty FAT32 filesystem of at most size bytes. go-diskfs
// v1.9.4 solves for the sectors per FAT leaving out FAT entries 0 and 1, so
// at some sizes its FAT is one or two entries short of the clusters (2046
// MiB, a 2 GiB key's partition: 522751 clusters, room for 522750): fsck.fat,
// mtools and Linux refuse such a filesystem. Its layout is checked, and,
// short, made again a cluster smaller, which gives the FAT its entries.
func create(f *os.File, start, size int64, label string) (*fat32.FileSystem, error) {
	const tries = 4
	for range tries {
		fs, err := fat32.Create(file.New(f, false), size, start, 512, label, true)
		if err != nil {
			return nil, fmt.Errorf("%w: %d bytes: %w", ErrSize, size, err)
		}
		_, err = readGeometry(section{f, start})
		if err == nil {
			return fs, nil
		}
		if !errors.Is(err, errShortFAT) {
			return nil, err
		}
		// What Create wrote (boot sectors, both FATs, the root folder) is
		// zeroed, so that the next layout starts from a blank extent.
		written := int64(fs.DataStart()) + int64(fs.BytesPerCluster())
		if _, err := f.WriteAt(make([]byte, written), start); err != nil {
			return nil, err
		}
		size -= int64(fs.BytesPerCluster())
	}
	return nil, fmt.Errorf("%w: %d bytes: go-diskfs lays out a FAT too short for its clusters %d times over", ErrSize, size, tries)
}

// section is the part of an image from off on.
type section struct {
	f   *os.File
	off int64
}

func (s section) ReadAt(p []byte, off int64) (int, error)  { return s.f.ReadAt(p, s.off+off) }
func (s section) WriteAt(p []byte, off int64) (int, error) { return s.f.WriteAt(p, s.off+off) }

func fill(fs filesystem.FileSystem, files []File, dirs []string, stamp time.Time) error {
	dirs = append([]string(nil), dirs...)
	for _, f := range files {
		dirs = append(dirs, path.Dir(f.Path))
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if d == "/" {
			continue
		}
		if err := fs.Mkdir(d); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	for _, f := range files {
		if err := writeFile(fs, f); err != nil {
			return err
		}
		if err := fs.Chtimes(f.Path, stamp, stamp, stamp); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(fs filesystem.FileSystem, f File) error {
	var src io.Reader = strings.NewReader(string(f.Data))
	if f.From != "" {
		in, err := os.Open(f.From)
		if err != nil {
			return err
		}
		defer in.Close()
		src = in
	}
	dst, err := fs.OpenFile(f.Path, os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("create %s: %w", f.Path, err)
	}
	// Large buffers: go-diskfs FAT writes are slow in small pieces.
	if _, err := io.CopyBuffer(dst, src, make([]byte, 4<<20)); err != nil {
		dst.Close()
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return dst.Close()
}
