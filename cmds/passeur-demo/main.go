// Command passeur-demo shows a whole migration under QEMU, as a technician
// would run it: it builds and signs camrec 8, makes a camrec 7 appliance
// (fixture b: a system disk keeping a data partition, and two data disks),
// makes the USB key image with the release on it, boots the appliance
// under OVMF from the key with the serial console shown live, and ends by
// booting v8 from its own disk and printing its health report next to
// what v7 held. ./build.sh demo runs it after building.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"aead.dev/minisign"
	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/usbkey"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "passeur-demo:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("passeur-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "qemu-x86_64", "board to boot")
	out := fs.String("out", "out", "where build.sh put the board's files")
	cache := fs.String("cache", ".cache", "download cache (camrec 8's kernel)")
	keyFile := fs.String("key", os.Getenv("PASSEUR_KEY"), "minisign key to sign camrec 8 with (the rescue image must trust it)")
	loader := fs.String("loader", usbkey.SystemdBoot, "systemd-boot's EFI binary")
	timeout := fs.Duration("timeout", 15*time.Minute, "how long each boot may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" {
		return fmt.Errorf("give -key (./build.sh demo sets PASSEUR_KEY)")
	}
	b, err := board.Load(*boardName)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "passeur-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	step := func(format string, a ...any) {
		fmt.Fprintf(stdout, "\n== [%5.1f s] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}

	step("building and signing camrec 8 (passeur's release builder)")
	relDir := filepath.Join(dir, "camrec-8.0.0")
	m, err := camrec.BuildV8(".", *cache, relDir, *keyFile, io.Discard)
	if err != nil {
		return fmt.Errorf("camrec 8: %w", err)
	}
	for _, a := range m.Artifacts {
		fmt.Fprintf(stdout, "   %-5s %-14s %9d bytes, %9d stored, sha256 %s…\n", a.Name, a.File, a.Size, a.StoredSize, a.SHA256[:16])
	}

	step("making the camrec 7 appliance (fixture b, with sfdisk and mkfs as its vendor did)")
	app, err := camrec.BuildV7(filepath.Join(dir, "v7"), camrec.VariantB, camrec.Options{Seed: 7, SegmentsPerCamera: 10})
	if err != nil {
		return err
	}
	disks := app.Disks()
	before := map[string]string{}
	for _, d := range disks {
		fmt.Fprintf(stdout, "   %-11s %-10s %s\n", d.Bus, d.Serial, filepath.Base(d.Path))
		if d.Path != app.System.Path {
			if before[d.Path], err = fixture.SHA256(d.Path); err != nil {
				return err
			}
		}
	}

	step("making the USB key image (systemd-boot, rescue kernel and initramfs, camrec 8, unattended)")
	key := filepath.Join(dir, "key.img")
	pub, err := sign.LoadPublicKey(strings.TrimSuffix(*keyFile, ".key") + ".pub")
	if err != nil {
		return err
	}
	c := usbkey.Content{Loader: *loader, Cmdline: b.Kernel.Cmdline, Releases: []string{relDir}, Config: []byte(`{"unattended": true}`),
		Trusted: []minisign.PublicKey{pub},
		Kernel:  filepath.Join(*out, b.Name, "vmlinuz"), Initramfs: filepath.Join(*out, b.Name, "initramfs.cpio.zst")}
	if err := usbkey.Image(key, 768<<20, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "   %s: GPT, one FAT32 EFI system partition\n", filepath.Base(key))

	step("booting the appliance under OVMF from the key (usb-storage); the serial console follows")
	console := &plainText{w: stdout}
	vm, err := qemu.Start(qemu.Options{Board: b, UEFI: true, Dir: dir, Console: console,
		Disks: append(disks, qemu.Disk{Path: key, Bus: qemu.USB, Serial: "PASSEUR-KEY"})})
	if err != nil {
		return err
	}
	defer vm.Stop()
	got, err := vm.WaitAny(*timeout, "health", "idle")
	if err != nil {
		return err
	}
	if got != "health" {
		return fmt.Errorf("the migration stopped before v8 started: see the console above")
	}
	vm.Stop()

	step("booting camrec 8 from its own disk under OVMF, as the box will from now on")
	vm, err = qemu.Start(qemu.Options{Board: b, UEFI: true, Dir: dir, Console: console, Disks: disks})
	if err != nil {
		return err
	}
	defer vm.Stop()
	ev, err := vm.WaitEvent("health", *timeout)
	if err != nil {
		return err
	}
	var v8 camrec.Report
	if err := ev.Decode(&v8); err != nil {
		return err
	}
	vm.Stop()
	unchanged := true
	for p, sum := range before {
		if now, err := fixture.SHA256(p); err != nil || now != sum {
			unchanged = false
		}
	}

	step("done")
	v7 := app.Expected
	row := func(what, a, b string) { fmt.Fprintf(stdout, "   %-18s %-42s %s\n", what, a, b) }
	row("", "camrec "+app.Version+" (before: what it held)", "camrec "+v8.Version+" (after: its health report)")
	row("cameras", fmt.Sprint(v7.Cameras), fmt.Sprint(v8.Cameras))
	row("segments indexed", fmt.Sprint(v7.SegmentsIndexed), fmt.Sprint(v8.SegmentsIndexed))
	row("segments missing", fmt.Sprint(v7.SegmentsMissing), fmt.Sprint(v8.SegmentsMissing))
	row("bytes", fmt.Sprint(v7.Bytes), fmt.Sprint(v8.Bytes))
	for i := 0; i < max(len(v7.Volumes), len(v8.Volumes)); i++ {
		row(map[bool]string{true: "data volumes"}[i == 0], at(v7.Volumes, i), at(v8.Volumes, i))
	}
	row("verdict", "", map[bool]string{true: "ok", false: "NOT OK"}[v8.OK])
	same := v8.Cameras == v7.Cameras && v8.SegmentsIndexed == v7.SegmentsIndexed && v8.SegmentsMissing == 0 &&
		v8.Bytes == v7.Bytes && strings.Join(v8.Volumes, ",") == strings.Join(v7.Volumes, ",") && v8.OK
	fmt.Fprintf(stdout, "\n   data disks unchanged, byte for byte: %v\n", unchanged)
	fmt.Fprintf(stdout, "   migration faithful: %v (%.0f s in all)\n", same, time.Since(start).Seconds())
	if !same || !unchanged {
		return fmt.Errorf("the migration did not keep what v7 held")
	}
	return nil
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// plainText passes the serial console on without its terminal escape
// sequences (the firmware clears the screen, which would wipe the demo's
// earlier output) and without the bytes of systemd-boot's menu frame (a PC
// code page, sometimes valid UTF-8 by chance): outside ASCII, only general
// punctuation (passeur's "…") passes.
type plainText struct {
	w      io.Writer
	inEsc  bool   // after ESC
	inCSI  bool   // after ESC [
	rest   []byte // the start of a UTF-8 sequence cut by the previous write
	pended []byte
}

func (p *plainText) Write(b []byte) (int, error) {
	in := append(p.rest, b...)
	p.rest = nil
	out := p.pended[:0]
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case p.inCSI:
			p.inCSI = c < 0x40 || c > 0x7e // a final byte ends the sequence
		case p.inEsc:
			p.inEsc, p.inCSI = false, c == '['
		case c == 0x1b:
			p.inEsc = true
		case c < utf8.RuneSelf:
			out = append(out, c)
		case !utf8.FullRune(in[i:]):
			p.rest = append([]byte(nil), in[i:]...)
			i = len(in)
			continue
		default:
			r, n := utf8.DecodeRune(in[i:])
			if r >= 0x2000 && r <= 0x206f { // punctuation passeur prints (…); the rest is frame
				out = append(out, in[i:i+n]...)
			}
			i += n
			continue
		}
		i++
	}
	p.pended = out
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
