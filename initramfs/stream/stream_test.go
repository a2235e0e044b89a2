package stream

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/passeur/passeur/image/release"
)

// image is content that compresses somewhat, like a filesystem image.
func image(size int, seed int64) []byte {
	b := make([]byte, size)
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < size; i += 8192 {
		if (i/8192)%3 != 0 {
			r.Read(b[i:min(i+8192, size)])
		}
	}
	return b
}

func artifact(t testing.TB, dir string, content []byte) release.Artifact {
	a, err := release.WriteArtifact(dir, "root", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func disk(t testing.TB, size int64) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	data := image(int(size), 99) // something to overwrite, and to keep
	f.Write(data)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWriteSkipReadBack(t *testing.T) {
	dir := t.TempDir()
	content := image(10<<20+12345, 1)
	a := artifact(t, dir, content)
	d := disk(t, 16<<20)
	before, _ := os.ReadFile(d.Name())
	const off = 1 << 20
	rc, _ := a.Open(dir)
	r, err := Write(d, off, 12<<20, rc, Options{BlockSize: 1 << 20, ReadBack: true, WantSHA256: a.SHA256})
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != int64(len(content)) || r.Written != r.Bytes || r.Skipped != 0 {
		t.Errorf("first write %+v", r)
	}
	after, _ := os.ReadFile(d.Name())
	if !bytes.Equal(after[off:off+len(content)], content) {
		t.Error("the partition does not hold the image")
	}
	if !bytes.Equal(after[:off], before[:off]) || !bytes.Equal(after[off+len(content):], before[off+len(content):]) {
		t.Error("bytes outside the image changed")
	}
	// The same release again: nothing written.
	rc, _ = a.Open(dir)
	r, err = Write(d, off, 12<<20, rc, Options{BlockSize: 1 << 20, SkipUnchanged: true})
	rc.Close()
	if err != nil || r.Written != 0 || r.Skipped != int64(len(content)) {
		t.Errorf("re-install: %+v %v", r, err)
	}
	// One block changed on the disk: only it is written again.
	d.WriteAt([]byte("rot"), off+3<<20+5)
	rc, _ = a.Open(dir)
	r, _ = Write(d, off, 12<<20, rc, Options{BlockSize: 1 << 20, SkipUnchanged: true, ReadBack: true, WantSHA256: a.SHA256})
	rc.Close()
	if r.Written != 1<<20 {
		t.Errorf("one rotten block: wrote %d bytes", r.Written)
	}
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	content := image(3<<20, 2)
	a := artifact(t, dir, content)
	d := disk(t, 8<<20)
	rc, _ := a.Open(dir)
	_, err := Write(d, 0, 2<<20, rc, Options{})
	rc.Close()
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("image over its partition: %v", err)
	}
	// A flipped byte in the stored artifact: named by the stream's check.
	p := filepath.Join(dir, a.File)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o644)
	rc, _ = a.Open(dir)
	_, err = Write(d, 0, 4<<20, rc, Options{})
	rc.Close()
	if err == nil {
		t.Error("flipped byte in the artifact: written without error")
	}
	// Read-back finds what the disk does not hold.
	_, err = Write(d, 0, 4<<20, bytes.NewReader(content), Options{ReadBack: true, WantSHA256: string(bytes.Repeat([]byte("0"), 64))})
	if !errors.Is(err, ErrReadBack) {
		t.Errorf("read-back: %v", err)
	}
}
