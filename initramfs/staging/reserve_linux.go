package staging

import (
	"os"

	"golang.org/x/sys/unix"
)

// reserve allocates every block of f's first size bytes.
func reserve(f *os.File, size int64) error { return unix.Fallocate(int(f.Fd()), 0, 0, size) }
