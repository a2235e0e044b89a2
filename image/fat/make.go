package fat

import (
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
	os.Remove(img)
	st, err := file.CreateFromPath(img, size)
	if err != nil {
		return err
	}
	fs, err := fat32.Create(st, size, 0, 512, label, true)
	if err == nil {
		err = fill(fs, files, dirs, stamp)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("FAT image %s: %w", img, err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := Fixup(f); err != nil {
		return fmt.Errorf("FAT image %s: %w", img, err)
	}
	return f.Close()
}

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
