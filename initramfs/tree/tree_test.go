package tree

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// hostile makes a tree as an old system could hold it: links out of the
// root, to a device, a FIFO, a file larger than the limit, a sparse file
// claiming terabytes.
func hostile(t *testing.T) (string, string) {
	t.Helper()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("rescue's own file"), 0o644)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc/camrec"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/hostname"), []byte("cam-01\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/camrec/camrec.conf"), []byte("ok"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "etc/abs"))
	os.Symlink("../../../../../../"+outside+"/secret", filepath.Join(dir, "etc/rel"))
	os.Symlink("/dev/zero", filepath.Join(dir, "etc/zero"))
	os.Symlink(outside, filepath.Join(dir, "etc/outdir"))
	os.Symlink("camrec", filepath.Join(dir, "etc/inside"))
	if err := syscall.Mkfifo(filepath.Join(dir, "etc/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2048), 0o644)
	f, _ := os.Create(filepath.Join(dir, "sparse"))
	f.Truncate(1 << 40)
	f.Close()
	return dir, outside
}

func TestTreeStaysInside(t *testing.T) {
	dir, _ := hostile(t)
	tr, err := Open(dir, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if b, err := fs.ReadFile(tr, "etc/hostname"); err != nil || string(b) != "cam-01\n" {
		t.Fatalf("a plain file: %q %v", b, err)
	}
	if b, err := fs.ReadFile(tr, "etc/inside/camrec.conf"); err != nil || string(b) != "ok" {
		t.Fatalf("through a link inside the root: %q %v", b, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for name, want := range map[string]error{
			"etc/abs": ErrNotRegular, "etc/rel": ErrNotRegular, "etc/zero": ErrNotRegular, "etc/fifo": ErrNotRegular, "etc/inside": ErrNotRegular,
			"etc/outdir/secret": ErrOutside, "big": ErrTooLarge, "sparse": ErrTooLarge, "../x": fs.ErrInvalid, "/etc/hostname": fs.ErrInvalid,
		} {
			b, err := fs.ReadFile(tr, name)
			if err == nil || want != nil && !errors.Is(err, want) {
				t.Errorf("%s: read %d bytes, error %v, want %v", name, len(b), err, want)
			}
			if strings.Contains(string(b), "rescue's own") {
				t.Errorf("%s: read outside the root", name)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading the tree hangs (a FIFO?)")
	}
	f, err := tr.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(f); !errors.Is(err, ErrTooLarge) {
		t.Errorf("streaming a file past the limit: %v", err)
	}
	f.Close()
	if ents, err := fs.ReadDir(tr, "etc"); err != nil || len(ents) < 6 {
		t.Errorf("listing: %d entries, %v", len(ents), err)
	}
	if info, err := fs.Stat(tr, "etc/abs"); err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("a link is described, not followed: %v %v", info, err)
	}
}

// The tree is an fs.FS as the standard library expects one to behave.
func TestTreeIsAnFS(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/c"), []byte("c"), 0o644)
	os.WriteFile(filepath.Join(dir, "d"), []byte("dd"), 0o644)
	tr, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := fstest.TestFS(tr, "a/b/c", "d"); err != nil {
		t.Fatal(err)
	}
}
