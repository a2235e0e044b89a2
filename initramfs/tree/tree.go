// Package tree reads a filesystem tree passeur did not write (the old
// system's root, a data volume, the install media) as an fs.FS that never
// leaves it: every path is resolved inside its root (os.Root), a symbolic
// link is never followed as the last component nor out of the root, only
// regular files and directories open (a FIFO or a device node is refused,
// and opened non-blocking so that a FIFO cannot hang the rescue), and
// every file reads at most a limit, whatever size it claims.
package tree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// DefaultLimit is what one file of a tree reads at most, unless the
// caller says otherwise: far above any configuration file or index a
// product keeps, far below the rescue's memory.
const DefaultLimit = 64 << 20

// Errors of reading a tree.
var (
	ErrNotRegular = errors.New("not a regular file or directory")
	ErrTooLarge   = errors.New("larger than passeur reads of a file")
	ErrOutside    = errors.New("the path leaves the tree through a link")
)

// outside names os.Root's refusal of a path that leaves the root, which
// the standard library does not export.
func outside(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return ErrOutside
	}
	return err
}

// FS is an open tree. Close it before unmounting what it reads.
type FS struct {
	root  *os.Root
	limit int64
}

// Open opens the tree at dir; limit bounds each file's reads (0 gives
// DefaultLimit).
func Open(dir string, limit int64) (*FS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &FS{root: r, limit: limit}, nil
}

// Close closes the tree's root.
func (t *FS) Close() error { return t.root.Close() }

// Open opens name, a directory or a regular file, without following a
// link at its end.
func (t *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	// os.Root resolves links inside the root, the last one too: a link
	// at the end of the path is refused first (the mounts are read-only,
	// nothing changes it in between).
	if info, err := t.root.Lstat(name); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (a symbolic link)", ErrNotRegular)}
	}
	f, err := t.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: outside(err)}
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case info.IsDir():
		return dir{f}, nil
	case info.Mode().IsRegular():
		return &file{File: f, left: t.limit, limit: t.limit}, nil
	}
	f.Close()
	return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (%s)", ErrNotRegular, info.Mode().Type())}
}

// ReadFile reads name whole, refusing a file larger than the limit before
// reading (or allocating for) it.
func (t *FS) ReadFile(name string) ([]byte, error) {
	f, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	if info.Size() > t.limit {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: %d bytes, %d at most", ErrTooLarge, info.Size(), t.limit)}
	}
	return io.ReadAll(f)
}

// ReadDir lists the directory name.
func (t *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, ok := f.(dir)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return d.ReadDir(-1)
}

// Stat describes name itself: a link is described, not followed.
func (t *FS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	info, err := t.root.Lstat(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: outside(err)}
	}
	return info, nil
}

// file is a regular file whose reads stop at the tree's limit.
type file struct {
	*os.File
	left, limit int64
}

func (f *file) Read(b []byte) (int, error) {
	if f.left <= 0 {
		var one [1]byte
		if n, _ := f.File.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("%s: %w (%d bytes at most)", f.Name(), ErrTooLarge, f.limit)
	}
	if int64(len(b)) > f.left {
		b = b[:f.left]
	}
	n, err := f.File.Read(b)
	f.left -= int64(n)
	return n, err
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > f.limit {
		return 0, fmt.Errorf("%s: %w (%d bytes at most)", f.Name(), ErrTooLarge, f.limit)
	}
	return f.File.ReadAt(b, off)
}

// dir is an open directory.
type dir struct{ *os.File }

func (d dir) Read([]byte) (int, error) { return 0, errors.New("is a directory") }

func (d dir) ReadDir(n int) ([]fs.DirEntry, error) { return d.File.ReadDir(n) }
