//go:build ignore

// mkseeds makes each filesystem fsprobe recognises with its real mkfs on a
// sparse file and keeps the bytes the probers read: the first 4 KiB (FAT
// and XFS superblocks, squashfs magic, ext superblock at 1 KiB, swap header
// and magic) in testdata/seeds/NAME.head and the 4 KiB at 64 KiB (btrfs
// superblock) in NAME.high, trailing zeros cut; NAME.blkid is what
// `blkid -p -o export` says of the whole image, and its size.
//
//	go run testdata/mkseeds.go
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
)

func main() {
	dir, err := os.MkdirTemp("", "fsprobe-seeds")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	for _, s := range []struct {
		name string
		size int64
		mkfs []string // IMG stands for the image
	}{
		{"ext2", 16 << 20, []string{"mkfs.ext2", "-q", "-L", "old-root", "IMG"}},
		{"ext3", 64 << 20, []string{"mkfs.ext3", "-q", "-L", "rec-a", "IMG"}},
		{"ext4", 64 << 20, []string{"mkfs.ext4", "-q", "-L", "camrec-data", "IMG"}},
		{"ext4-label-16", 64 << 20, []string{"mkfs.ext4", "-q", "-L", "recordings 2 of3", "IMG"}},
		{"jbd", 16 << 20, []string{"mke2fs", "-q", "-O", "journal_dev", "-L", "journal", "IMG"}},
		{"xfs", 320 << 20, []string{"mkfs.xfs", "-q", "-L", "recordings", "IMG"}},
		{"btrfs", 128 << 20, []string{"mkfs.btrfs", "-q", "-L", "bt-archive", "IMG"}},
		{"swap", 16 << 20, []string{"mkswap", "-L", "swp", "IMG"}},
		{"squashfs", 0, []string{"mksquashfs", src, "IMG", "-quiet", "-no-progress"}},
		{"vfat12", 4 << 20, []string{"mkfs.vfat", "-F", "12", "-n", "BOOT", "IMG"}},
		{"vfat16", 32 << 20, []string{"mkfs.vfat", "-F", "16", "IMG"}},
		{"vfat32", 64 << 20, []string{"mkfs.vfat", "-F", "32", "-n", "PASSEUR", "IMG"}},
	} {
		img := filepath.Join(dir, s.name+".img")
		if s.size > 0 {
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				log.Fatal(err)
			}
			if err := os.Truncate(img, s.size); err != nil {
				log.Fatal(err)
			}
		}
		args := append([]string(nil), s.mkfs[1:]...)
		for i, a := range args {
			if a == "IMG" {
				args[i] = img
			}
		}
		if out, err := exec.Command(s.mkfs[0], args...).CombinedOutput(); err != nil {
			log.Fatalf("%s: %v\n%s", s.name, err, out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			log.Fatal(err)
		}
		blkid, err := exec.Command("blkid", "-p", "-o", "export", img).Output()
		if err != nil {
			log.Fatalf("blkid %s: %v", s.name, err)
		}
		blkid = bytes.ReplaceAll(blkid, []byte(img), []byte(s.name+".img"))
		blkid = fmt.Appendf(blkid, "SIZE=%d\n", len(b))
		write(s.name+".head", b[:min(len(b), 4096)])
		if s.name == "btrfs" { // no other prober reads past 64 KiB
			write(s.name+".high", b[0x10000:0x11000])
		}
		write(s.name+".blkid", blkid)
	}
}

func write(name string, b []byte) {
	if filepath.Ext(name) != ".blkid" {
		b = bytes.TrimRight(b, "\x00")
	}
	if len(b) == 0 {
		return
	}
	if err := os.WriteFile(filepath.Join("testdata", "seeds", name), b, 0o644); err != nil {
		log.Fatal(err)
	}
}
