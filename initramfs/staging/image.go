package staging

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/journal"
)

// IncomingDir is the folder, beside the image, where passeur stage brings
// the release before it lays it in the image.
const IncomingDir = "incoming"

// Make makes the staging area's image at img: a FAT filesystem of size
// bytes laid out as a passeur key, holding the files of the folder from
// (a key's layout: releases, the repository's memory, the record), every
// block of it allocated on the volume, so that what the rescue writes in
// it never fills the volume. The image replaces what was at img only once
// it is whole.
func Make(img string, size int64, from string, stamp time.Time) error {
	if size < MinImage || size > MaxImage {
		return fmt.Errorf("%w: %d bytes", ErrBadImage, size)
	}
	files := []fat.File{{Path: "/" + medialayout.Marker, Data: []byte(medialayout.MarkerData)}}
	dirs := []string{"/" + medialayout.BackupDir, "/" + medialayout.ReleasesDir}
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		switch {
		case rel == ".":
		case d.IsDir():
			dirs = append(dirs, "/"+filepath.ToSlash(rel))
		case d.Type().IsRegular():
			files = append(files, fat.File{Path: "/" + filepath.ToSlash(rel), From: p})
		default:
			return fmt.Errorf("%s: not a regular file", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tmp := img + ".new"
	if err := fat.Make(tmp, size, Label, files, dirs, stamp); err != nil {
		return err
	}
	defer os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := reserve(f, size); err != nil {
		return fmt.Errorf("reserve %d bytes for %s: %w", size, img, err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp, img); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(img)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Image reads the staging image at img, read-only.
type Image struct {
	f  *os.File
	fs *fat32.FileSystem
}

// OpenImage opens the staging image at img to read it, without mounting it.
func OpenImage(img string) (*Image, error) {
	st, err := os.Lstat(img)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() < MinImage || st.Size() > MaxImage {
		return nil, fmt.Errorf("%w: %s", ErrBadImage, img)
	}
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	fsys, err := fat32.Read(file.New(f, true), st.Size(), 0, 512)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrBadImage, img, err)
	}
	return &Image{f: f, fs: fsys}, nil
}

// Close closes the image.
func (i *Image) Close() error { return i.f.Close() }

// ReadFile reads the file at name (slash-separated, from the image's root),
// up to limit bytes.
func (i *Image) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := i.fs.OpenFile(path.Join("/", name), os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, 64<<10)
	chunk := make([]byte, 64<<10)
	for {
		n, err := f.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return nil, err
		}
	}
}

// Names lists the names in the folder dir of the image.
func (i *Image) Names(dir string) ([]string, error) {
	// The reader's ReadDir takes fs.FS names: no leading slash, "." the root.
	name := strings.TrimPrefix(path.Clean("/"+dir), "/")
	if name == "" {
		name = "."
	}
	entries, err := i.fs.ReadDir(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); n != "." && n != ".." {
			out = append(out, n)
		}
	}
	return out, nil
}

// maxJournal bounds a journal read from a staging image.
const maxJournal = 16 << 20

// Runs counts the runs the image at img holds (its Backup/HOST/RUN
// folders): those whose journal ends finished, and the others (a run to
// take up, or one passeur cannot read), which staging again must not lose.
func Runs(img string) (finished, unfinished int, err error) {
	i, err := OpenImage(img)
	if err != nil {
		return 0, 0, err
	}
	defer i.Close()
	hosts, err := i.Names(medialayout.BackupDir)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s: %w", ErrBadImage, img, err)
	}
	for _, h := range hosts {
		runs, err := i.Names(medialayout.BackupDir + "/" + h)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: %s: %w", ErrBadImage, img, err)
		}
		for _, r := range runs {
			data, err := i.ReadFile(medialayout.BackupDir+"/"+h+"/"+r+"/"+journal.File, maxJournal)
			recs, _, perr := journal.Parse(data)
			if err == nil && perr == nil && recs[len(recs)-1].State == journal.StateFinished {
				finished++
			} else {
				unfinished++
			}
		}
	}
	return finished, unfinished, nil
}
