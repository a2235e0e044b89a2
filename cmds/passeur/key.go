package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/usbkey"
)

// keyCmd makes install media: a disk image to dd onto a USB key, or the
// same tree copied onto a mounted FAT32 key. Every release must be signed
// by one of the -trust keys, checked before anything is written.
//
//	passeur key -image key.img [-size 4GiB] -release DIR[,DIR] -trust K.pub[,K.pub] [-config F]
//	passeur key -dir /media/KEY -release DIR[,DIR] -trust K.pub[,K.pub] [-config F]
func keyCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "qemu-x86_64", "board the key boots")
	out := fs.String("out", "out", "build output folder (passeur build): <out>/<board>/vmlinuz and initramfs.cpio.zst")
	img := fs.String("image", "", "make this disk image (GPT, one FAT32 EFI system partition)")
	size := fs.String("size", "2GiB", "size of the image")
	dir := fs.String("dir", "", "instead, copy the tree onto this mounted FAT32 key (or folder)")
	rels := fs.String("release", "", "comma-separated release folders to put in releases/")
	trust := fs.String("trust", "", "comma-separated minisign public key files, those the rescue image trusts (passeur build -trust): each release must be signed by one")
	cfg := fs.String("config", "", "file to install as passeur/config.json")
	loader := fs.String("loader", usbkey.SystemdBoot, "systemd-boot's EFI binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*img == "") == (*dir == "") {
		return fmt.Errorf("key: give -image or -dir")
	}
	b, err := board.Load(*boardName)
	if err != nil {
		return err
	}
	c := usbkey.Content{Loader: *loader, Cmdline: b.Kernel.Cmdline,
		Kernel: filepath.Join(*out, b.Name, "vmlinuz"), Initramfs: filepath.Join(*out, b.Name, "initramfs.cpio.zst")}
	if *rels != "" {
		c.Releases = strings.Split(*rels, ",")
	}
	for _, p := range strings.Split(*trust, ",") {
		if p == "" {
			continue
		}
		pk, err := sign.LoadPublicKey(p)
		if err != nil {
			return fmt.Errorf("key: -trust: %w", err)
		}
		c.Trusted = append(c.Trusted, pk)
	}
	if *cfg != "" {
		if c.Config, err = os.ReadFile(*cfg); err != nil {
			return err
		}
	}
	if epoch, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		c.Stamp = time.Unix(epoch, 0)
	}
	if *dir != "" {
		if err := usbkey.Prepare(*dir, c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "prepared %s for board %s (%d releases)\n", *dir, b.Name, len(c.Releases))
		return nil
	}
	sz, err := release.ParseSize(*size)
	if err != nil || sz.Min || sz.Rest {
		return fmt.Errorf("key: -size %q: want e.g. 2GiB", *size)
	}
	if err := usbkey.Image(*img, sz.Bytes, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "made %s (%s) for board %s (%d releases): dd if=%s of=/dev/sdX bs=4M conv=fsync\n", *img, sz, b.Name, len(c.Releases), *img)
	return nil
}
