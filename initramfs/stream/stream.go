// Package stream writes a partition image onto a disk in one pass: the
// release artifact is decompressed and hashed as it streams (the reader
// from release.Artifact.Open checks size and SHA-256 when it reaches the
// end), and written in large blocks at the partition's offset, never past
// its end. With SkipUnchanged, each block is compared with what the disk
// holds and written only if it differs (re-installing the same release
// writes nothing); with ReadBack, the region is read back from the disk
// after the sync and hashed again. The partition counts as written only
// when Write returns nil.
package stream

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// BlockSize is the default size of a write: large and aligned.
const BlockSize = 4 << 20

// Errors a caller may branch on.
var (
	ErrTooLarge = errors.New("image larger than its partition")
	ErrReadBack = errors.New("read-back of the written partition differs")
)

// Options tune Write.
type Options struct {
	BlockSize     int  // default BlockSize
	SkipUnchanged bool // read each block first; write it only if it differs
	// ReadBack, with WantSHA256, reads the written region back from the
	// disk (its page cache dropped first) and checks its hash.
	ReadBack   bool
	WantSHA256 string
	// Progress, when set, is told the bytes done after each block.
	Progress func(done int64)
}

// Result is what a Write did.
type Result struct {
	Bytes   int64   `json:"bytes"`   // image size
	Written int64   `json:"written"` // bytes written to the disk
	Skipped int64   `json:"skipped"` // bytes found already there
	Seconds float64 `json:"seconds"`
}

// Write copies src to disk at offset, at most limit bytes, then syncs.
func Write(disk *os.File, offset, limit int64, src io.Reader, o Options) (Result, error) {
	start := time.Now()
	bs := o.BlockSize
	if bs <= 0 {
		bs = BlockSize
	}
	var r Result
	buf := make([]byte, bs)
	var old []byte
	if o.SkipUnchanged {
		old = make([]byte, bs)
	}
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if r.Bytes+int64(n) > limit {
				return r, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
			}
			at := offset + r.Bytes
			same := false
			if o.SkipUnchanged {
				k, err := disk.ReadAt(old[:n], at)
				same = k == n && (err == nil || err == io.EOF) && bytes.Equal(old[:n], buf[:n])
			}
			if same {
				r.Skipped += int64(n)
			} else {
				if _, err := disk.WriteAt(buf[:n], at); err != nil {
					return r, fmt.Errorf("write at %d: %w", at, err)
				}
				r.Written += int64(n)
			}
			r.Bytes += int64(n)
			if o.Progress != nil {
				o.Progress(r.Bytes)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break // the source checked its size and hash before saying EOF
		}
		if rerr != nil {
			return r, rerr
		}
	}
	if err := disk.Sync(); err != nil {
		return r, fmt.Errorf("sync: %w", err)
	}
	if o.ReadBack {
		if err := readBack(disk, offset, r.Bytes, o.WantSHA256, buf); err != nil {
			return r, err
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// readBack drops the region from the page cache and hashes it as read
// from the disk.
func readBack(disk *os.File, offset, size int64, want string, buf []byte) error {
	unix.Fadvise(int(disk.Fd()), offset, size, unix.FADV_DONTNEED)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(disk, offset, size), buf); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: sha256 %s, want %s", ErrReadBack, got, want)
	}
	return nil
}
