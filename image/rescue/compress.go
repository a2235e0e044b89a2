package rescue

import (
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// compressFile writes src compressed with zstd to dst (atomically) and
// returns both sizes. The kernel's zstd decompressor needs frames whose
// window fits its limits, hence the explicit window size.
func compressFile(src, dst string) (int64, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(tmp)
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithWindowSize(8<<20))
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(zw, in)
	if err != nil {
		return 0, 0, fmt.Errorf("compress %s: %w", src, err)
	}
	if err := zw.Close(); err != nil {
		return 0, 0, err
	}
	if err := out.Close(); err != nil {
		return 0, 0, err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return 0, 0, err
	}
	return n, st.Size(), os.Rename(tmp, dst)
}
