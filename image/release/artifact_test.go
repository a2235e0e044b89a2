package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// storedArtifact writes content zstd-compressed into dir and describes it.
func storedArtifact(t *testing.T, dir string, content []byte) Artifact {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(content)
	zw.Close()
	os.WriteFile(filepath.Join(dir, "root.img.zst"), buf.Bytes(), 0o644)
	sum := sha256.Sum256(content)
	ssum := sha256.Sum256(buf.Bytes())
	return Artifact{Name: "root", File: "root.img.zst", Compression: "zstd",
		Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
		StoredSize: int64(buf.Len()), StoredSHA256: hex.EncodeToString(ssum[:])}
}

func TestArtifactVerify(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(content[:1<<20]) // part random, part zeros
	a := storedArtifact(t, dir, content)
	if err := a.Verify(dir); err != nil {
		t.Fatalf("intact artifact: %v", err)
	}
	stored, _ := os.ReadFile(filepath.Join(dir, a.File))
	for _, off := range []int{0, len(stored) / 2, len(stored) - 1} {
		bad := bytes.Clone(stored)
		bad[off] ^= 0x40
		os.WriteFile(filepath.Join(dir, a.File), bad, 0o644)
		if err := a.Verify(dir); !errors.Is(err, ErrArtifactMismatch) {
			t.Errorf("byte %d of %d flipped: Verify = %v, want ErrArtifactMismatch", off, len(stored), err)
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
