package staging

import (
	"bytes"
	"encoding/json"
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
	"github.com/passeur/passeur/initramfs/steps"
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
func OpenImage(img string) (_ *Image, err error) {
	defer bounded(img, &err)
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
func (i *Image) ReadFile(name string, limit int64) (data []byte, err error) {
	defer bounded(name, &err)
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

// copyFile copies the file name of the image to w, in 64 KiB reads (each
// on a 512-byte boundary: see Open), refusing more than limit bytes.
func (i *Image) copyFile(name string, w io.Writer, limit int64) (n int64, err error) {
	defer bounded(name, &err)
	f, err := i.fs.OpenFile(path.Join("/", name), os.O_RDONLY)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		k, err := f.Read(chunk)
		if n += int64(k); n > limit {
			return n, fmt.Errorf("%w: %s: more than %d bytes", ErrTooBig, name, limit)
		}
		if _, werr := w.Write(chunk[:k]); werr != nil {
			return n, werr
		}
		if errors.Is(err, io.EOF) || err == nil && k == 0 {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Names lists the names in the folder dir of the image.
func (i *Image) Names(dir string) (out []string, err error) {
	defer bounded(dir, &err)
	// The reader's ReadDir takes fs.FS names: no leading slash, "." the root.
	name := strings.TrimPrefix(path.Clean("/"+dir), "/")
	if name == "" {
		name = "."
	}
	entries, err := i.fs.ReadDir(name)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if n == "." || n == ".." {
			continue
		}
		if !plainName(n) {
			return nil, fmt.Errorf("%w: %s holds %q, no file name", ErrBadImage, name, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// bounded turns a panic of go-diskfs while it reads name into an error:
// v1.9.4 indexes past a file's clusters when its directory entry says it
// is longer than they hold (a file cut by a power loss), and what the
// image holds is not trusted.
func bounded(name string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: reading %s: %v", ErrBadImage, name, p)
	}
}

// plainName tells whether n is one plain path element: FAT long names
// may hold a slash, which go-diskfs gives back as it is.
func plainName(n string) bool {
	return fs.ValidPath(n) && n != "." && !strings.ContainsAny(n, "/\\")
}

// maxOpen bounds a file read through Open: manifests, signatures, records.
const maxOpen = 16 << 20

// Open opens name, an fs.FS name, in the image: an Image is an fs.FS
// (media.Verify reads the staged manifest through it). The file is read
// whole, up to 16 MiB, with ReadFile: go-diskfs v1.9.4 returns wrong
// bytes to a read that starts off a 512-byte boundary (a 1009-byte file
// read 1000 bytes at a time comes back 1024 bytes long), which
// io.ReadAll's growing buffer makes.
func (i *Image) Open(name string) (_ fs.File, err error) {
	defer bounded(name, &err)
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := i.fs.Open("/" + name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a folder")}
	}
	data, err := i.ReadFile(name, maxOpen)
	if err != nil {
		return nil, err
	}
	return &memFile{Reader: bytes.NewReader(data), info: st}, nil
}

// memFile is a file of the image read whole.
type memFile struct {
	*bytes.Reader
	info fs.FileInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

// Record reads the record passeur stage left in the image (StagedFile).
func (i *Image) Record() (*Record, error) {
	data, err := i.ReadFile(StagedFile, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("the staging record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%w: the staging record: %w", ErrBadImage, err)
	}
	return &rec, nil
}

// maxJournal bounds a journal read from a staging image.
const maxJournal = journal.MaxSize

// Run is a run the image holds: its folder (Backup/HOST/RUN) and its
// journal's records, or why they cannot be read.
type Run struct {
	Dir     string
	Records []journal.Record
	Err     error
}

// Finished tells whether the run's journal ends finished.
func (r Run) Finished() bool {
	return r.Err == nil && r.Records[len(r.Records)-1].State == journal.StateFinished
}

// Booted tells whether the run, not finished, started the new system
// (its boot step done): its outcome is the new system's health report.
func (r Run) Booted() bool {
	if r.Err != nil || r.Finished() {
		return false
	}
	_, done := journal.DoneIn(r.Records, steps.Boot)
	return done
}

// Header is the run's header (zero when its journal cannot be read).
func (r Run) Header() journal.Header {
	var h journal.Header
	if r.Err == nil {
		json.Unmarshal(r.Records[0].Detail, &h)
	}
	return h
}

// Runs lists the runs the image holds.
func (i *Image) Runs() ([]Run, error) {
	hosts, err := i.Names(medialayout.BackupDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadImage, err)
	}
	var out []Run
	for _, h := range hosts {
		runs, err := i.Names(medialayout.BackupDir + "/" + h)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadImage, err)
		}
		for _, r := range runs {
			run := Run{Dir: medialayout.BackupDir + "/" + h + "/" + r}
			data, err := i.ReadFile(run.Dir+"/"+journal.File, maxJournal)
			if err == nil {
				run.Records, _, err = journal.Parse(data)
			}
			run.Err = err
			out = append(out, run)
		}
	}
	return out, nil
}

// Runs counts the runs the image at img holds (its Backup/HOST/RUN
// folders): those whose journal ends finished, and the others (a run to
// take up, or one passeur cannot read), which staging again must not lose.
func Runs(img string) (finished, unfinished int, err error) {
	i, err := OpenImage(img)
	if err != nil {
		return 0, 0, err
	}
	defer i.Close()
	runs, err := i.Runs()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", img, err)
	}
	for _, r := range runs {
		if r.Finished() {
			finished++
		} else {
			unfinished++
		}
	}
	return finished, unfinished, nil
}

// maxDepth bounds how deep CopyOut goes: a backup keeps its files under
// their paths on the old system (files/var/lib/camrec/index/…).
const maxDepth = 32

// ErrTooBig: a folder of the image holds more than it may be copied with.
var ErrTooBig = errors.New("the staging image's folder is larger than allowed")

// CopyOut copies the folder dir of the image, files and folders, into the
// folder to of root, made for it (its parent must exist, to must not),
// nothing written outside root: at most
// limit bytes in all, names that are one plain path element each, and
// nothing but files and folders, maxDepth levels deep at most. What the image
// holds is not trusted: a refused copy leaves to partly made, for the
// caller to remove.
func (i *Image) CopyOut(dir string, into *os.Root, to string, limit int64) (err error) {
	defer bounded(dir, &err)
	if err := into.Mkdir(to, 0o700); err != nil {
		return err
	}
	root, err := into.OpenRoot(to)
	if err != nil {
		return err
	}
	defer root.Close()
	left := limit
	var walk func(from, rel string, depth int) error
	walk = func(from, rel string, depth int) error {
		name := strings.TrimPrefix(path.Clean("/"+from), "/")
		if name == "" {
			name = "."
		}
		entries, err := i.fs.ReadDir(name)
		if err != nil {
			return err
		}
		for _, e := range entries {
			n := e.Name()
			if n == "." || n == ".." {
				continue
			}
			if !plainName(n) {
				return fmt.Errorf("%w: %q is no file name", ErrBadImage, n)
			}
			src, dst := from+"/"+n, path.Join(rel, n)
			switch {
			case e.IsDir() && depth < maxDepth:
				if err := root.Mkdir(dst, 0o700); err != nil {
					return err
				}
				if err := walk(src, dst, depth+1); err != nil {
					return err
				}
			case e.IsDir():
				return fmt.Errorf("%w: %s is more than %d folders deep", ErrBadImage, src, maxDepth)
			case e.Type().IsRegular():
				out, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return err
				}
				n, err := i.copyFile(src, out, left)
				left -= n
				if err = errors.Join(err, out.Sync(), out.Close()); err != nil {
					return err
				}
			default:
				return fmt.Errorf("%w: %s holds %s, neither a file nor a folder", ErrBadImage, dir, src)
			}
		}
		return nil
	}
	return walk(dir, ".", 0)
}
