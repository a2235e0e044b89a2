// Package fsprobe recognises filesystems by their superblocks, the way blkid
// does, from an io.ReaderAt: type, label and UUID. It reads, never writes.
package fsprobe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FS is a recognised filesystem.
type FS struct {
	Type  string `json:"type"`            // as blkid names it: ext4, vfat, xfs, ...
	Label string `json:"label,omitempty"` // empty when none is set
	UUID  string `json:"uuid,omitempty"`  // as blkid prints it
	// Version tells variants of a type apart, as blkid's VERSION: FAT12,
	// FAT16 or FAT32 for vfat.
	Version string `json:"version,omitempty"`
}

// prober recognises one filesystem type; it returns nil, nil when the
// content is not of its type.
type prober func(r io.ReaderAt, size int64) (*FS, error)

// probers are tried in order. The FAT prober comes after those with a magic
// number, because a boot sector is the weakest signature.
var probers = []prober{probeExt, probeXFS, probeBtrfs, probeSquashfs, probeSwap, probeFAT}

// Probe returns the filesystem found on r (of size bytes), or nil if none is
// recognised. Errors are read errors only.
func Probe(r io.ReaderAt, size int64) (*FS, error) {
	for _, p := range probers {
		fs, err := p(r, size)
		if err != nil {
			return nil, err
		}
		if fs != nil {
			return fs, nil
		}
	}
	return nil, nil
}

// readAt reads n bytes at off; a device shorter than off+n is "not this
// filesystem", not an error.
func readAt(r io.ReaderAt, size, off int64, n int) ([]byte, error) {
	if off+int64(n) > size {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	return b, nil
}

// uuid formats 16 bytes in the usual 8-4-4-4-12 form.
func uuid(b []byte) string {
	if bytes.Equal(b, make([]byte, 16)) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// cstring returns b up to its first NUL, without trailing spaces.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), " ")
}

var le = binary.LittleEndian
