package release

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

func TestArtifactVerify(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(content[:1<<20]) // part random, part zeros
	a, err := WriteArtifact(dir, "root", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	again, err := WriteArtifact(t.TempDir(), "root", bytes.NewReader(content))
	if err != nil || again != a {
		t.Errorf("writing the same content twice gave %+v and %+v (%v)", a, again, err)
	}
	if a.Size != int64(len(content)) || a.StoredSize >= a.Size {
		t.Errorf("artifact %+v: sizes wrong or not compressed", a)
	}
	if err := a.Verify(dir); err != nil {
		t.Fatalf("intact artifact: %v", err)
	}
	if err := a.VerifyStored(os.DirFS(dir), "."); err != nil {
		t.Fatalf("intact artifact as stored: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "short"), []byte{1}, 0o644)
	if short := (Artifact{Name: "root", File: "short", StoredSize: a.StoredSize, StoredSHA256: a.StoredSHA256}); !errors.Is(short.VerifyStored(os.DirFS(dir), "."), ErrArtifactMismatch) {
		t.Error("truncated artifact passes VerifyStored")
	}
	stored, _ := os.ReadFile(filepath.Join(dir, a.File))
	for _, off := range []int{0, len(stored) / 2, len(stored) - 1} {
		bad := bytes.Clone(stored)
		bad[off] ^= 0x40
		os.WriteFile(filepath.Join(dir, a.File), bad, 0o644)
		if err := a.Verify(dir); !errors.Is(err, ErrArtifactMismatch) {
			t.Errorf("byte %d of %d flipped: Verify = %v, want ErrArtifactMismatch", off, len(stored), err)
		}
		if err := a.VerifyStored(os.DirFS(dir), "."); !errors.Is(err, ErrArtifactMismatch) {
			t.Errorf("byte %d of %d flipped: VerifyStored = %v, want ErrArtifactMismatch", off, len(stored), err)
		}
	}
	os.WriteFile(filepath.Join(dir, a.File), append(bytes.Clone(stored), 0), 0o644)
	if err := a.Verify(dir); !errors.Is(err, ErrArtifactMismatch) {
		t.Errorf("one byte appended: %v, want ErrArtifactMismatch", err)
	}
	wrong := a
	wrong.SHA256 = hex.EncodeToString(make([]byte, 32))
	os.WriteFile(filepath.Join(dir, a.File), stored, 0o644)
	if err := wrong.Verify(dir); !errors.Is(err, ErrArtifactMismatch) {
		t.Errorf("wrong content hash: %v, want ErrArtifactMismatch", err)
	}
}
