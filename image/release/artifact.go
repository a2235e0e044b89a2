package release

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// ErrArtifactMismatch means an artifact's bytes are not those the manifest
// names: corrupt, truncated or tampered.
var ErrArtifactMismatch = errors.New("artifact does not match the manifest")

// Open opens an artifact stored in dir and returns a reader of its content
// (decompressed). Reading it to the end checks both the stored and the
// decompressed size and SHA-256; a mismatch is reported by the Read that
// reaches the end, as ErrArtifactMismatch. Nothing read from it may be
// trusted before that.
func (a Artifact) Open(dir string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(a.File)))
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	stored := &checked{r: f, h: sha256.New(), size: a.StoredSize, sum: a.StoredSHA256, what: "artifact " + a.Name + " as stored"}
	if a.Compression == "none" {
		return readCloser{stored, f}, nil
	}
	zr, err := zstd.NewReader(stored, zstd.WithDecoderConcurrency(2))
	if err != nil {
		f.Close()
		return nil, err
	}
	content := &checked{r: zr, h: sha256.New(), size: a.Size, sum: a.SHA256, what: "artifact " + a.Name, inner: stored}
	return readCloser{content, closeFunc(func() error { zr.Close(); return f.Close() })}, nil
}

// Verify reads the whole artifact and checks it.
func (a Artifact) Verify(dir string) error {
	rc, err := a.Open(dir)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// VerifyStored checks the artifact as stored in dir of fsys, size and
// SHA-256, without decompressing it: cheap enough to run on every
// artifact before anything is written anywhere.
func (a Artifact) VerifyStored(fsys fs.FS, dir string) error {
	f, err := fsys.Open(path.Join(dir, a.File))
	if err != nil {
		return fmt.Errorf("artifact %s: %w", a.Name, err)
	}
	defer f.Close()
	c := &checked{r: f, h: sha256.New(), size: a.StoredSize, sum: a.StoredSHA256, what: "artifact " + a.Name + " as stored"}
	_, err = io.Copy(io.Discard, c)
	return err
}

// VerifyArtifactsStored checks every artifact of m as stored in dir of fsys.
func (m *Manifest) VerifyArtifactsStored(fsys fs.FS, dir string) error {
	for _, a := range m.Artifacts {
		if err := a.VerifyStored(fsys, dir); err != nil {
			return err
		}
	}
	return nil
}

// VerifyArtifacts checks every artifact of m stored in dir.
func (m *Manifest) VerifyArtifacts(dir string) error {
	for _, a := range m.Artifacts {
		if err := a.Verify(dir); err != nil {
			return err
		}
	}
	return nil
}

// checked counts and hashes what passes through it and checks both at EOF.
type checked struct {
	r     io.Reader
	h     hashWriter
	n     int64
	size  int64
	sum   string
	what  string
	inner *checked // the stored stream under a decompressor, checked too
	ioErr error    // a read error of the underlying file, not of the data
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func (c *checked) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.n > c.size {
		return n, fmt.Errorf("%w: %s is longer than %d bytes", ErrArtifactMismatch, c.what, c.size)
	}
	if errors.Is(err, io.EOF) {
		if c.inner != nil {
			// The decompressor may stop before the stored stream's end.
			if _, ierr := io.Copy(io.Discard, c.inner); ierr != nil {
				return n, ierr
			}
			if ierr := c.inner.final(); ierr != nil {
				return n, ierr
			}
		}
		if ferr := c.final(); ferr != nil {
			return n, ferr
		}
	} else if err != nil {
		if c.inner != nil && c.inner.ioErr == nil {
			// The file read fine: its bytes do not decompress.
			return n, fmt.Errorf("%w: %s does not decompress: %w", ErrArtifactMismatch, c.what, err)
		}
		c.ioErr = err
		return n, fmt.Errorf("%s: %w", c.what, err)
	}
	return n, err
}

func (c *checked) final() error {
	if c.n != c.size {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrArtifactMismatch, c.what, c.n, c.size)
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); got != c.sum {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrArtifactMismatch, c.what, got, c.sum)
	}
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// WriteArtifact stores content as dir/<name>.img.zst, compressed with zstd,
// and returns its description with both sizes and hashes. The encoder runs
// on one goroutine with fixed settings, so the same content always gives
// the same bytes: builds stay reproducible.
func WriteArtifact(dir, name string, content io.Reader) (Artifact, error) {
	a := Artifact{Name: name, File: name + ".img.zst", Compression: "zstd"}
	path := filepath.Join(dir, a.File)
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return Artifact{}, err
	}
	defer os.Remove(path + ".tmp")
	defer f.Close()
	stored, plain := sha256.New(), sha256.New()
	sw := &countWriter{w: io.MultiWriter(f, stored)}
	zw, err := zstd.NewWriter(sw, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithWindowSize(8<<20))
	if err != nil {
		return Artifact{}, err
	}
	n, err := io.Copy(zw, io.TeeReader(content, plain))
	if err != nil {
		return Artifact{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return Artifact{}, err
	}
	if err := f.Sync(); err != nil {
		return Artifact{}, err
	}
	if err := f.Close(); err != nil {
		return Artifact{}, err
	}
	a.Size, a.SHA256 = n, hex.EncodeToString(plain.Sum(nil))
	a.StoredSize, a.StoredSHA256 = sw.n, hex.EncodeToString(stored.Sum(nil))
	return a, os.Rename(path+".tmp", path)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
