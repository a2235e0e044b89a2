package fsprobe

import (
	"bytes"
	"io"
)

// XFS: "XFSB" at 0, UUID at 32, 12-byte label at 108.
func probeXFS(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readAt(r, size, 0, 120)
	if sb == nil || err != nil || !bytes.Equal(sb[0:4], []byte("XFSB")) {
		return nil, err
	}
	return &FS{Type: "xfs", Label: cstring(sb[108:120]), UUID: uuid(sb[32:48])}, nil
}

// btrfs: superblock at 64 KiB, magic "_BHRfS_M" at 0x40 in it.
func probeBtrfs(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readAt(r, size, 0x10000, 0x1000)
	if sb == nil || err != nil || !bytes.Equal(sb[0x40:0x48], []byte("_BHRfS_M")) {
		return nil, err
	}
	return &FS{Type: "btrfs", Label: cstring(sb[0x12B : 0x12B+256]), UUID: uuid(sb[0x20:0x30])}, nil
}

// squashfs: "hsqs" at 0; it has neither label nor UUID.
func probeSquashfs(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readAt(r, size, 0, 4)
	if sb == nil || err != nil || !bytes.Equal(sb, []byte("hsqs")) {
		return nil, err
	}
	return &FS{Type: "squashfs"}, nil
}

// Linux swap: "SWAPSPACE2" at the end of the first page; UUID and label in
// the header after the 1024 boot bytes. Page sizes 4 KiB to 64 KiB.
func probeSwap(r io.ReaderAt, size int64) (*FS, error) {
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		m, err := readAt(r, size, page-10, 10)
		if err != nil {
			return nil, err
		}
		if m == nil || !bytes.Equal(m, []byte("SWAPSPACE2")) {
			continue
		}
		h, err := readAt(r, size, 1024, 44)
		if h == nil || err != nil {
			return nil, err
		}
		return &FS{Type: "swap", UUID: uuid(h[12:28]), Label: cstring(h[28:44])}, nil
	}
	return nil, nil
}
