package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/netboot"
)

// keyList collects repeated -key name=value flags.
type keyList map[string]string

func (k keyList) String() string { return fmt.Sprint(map[string]string(k)) }

func (k keyList) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not name=value", s)
	}
	k[strings.TrimPrefix(name, "passeur.")] = v
	return nil
}

// netbootCmd writes a board's netboot bundle.
//
//	passeur netboot -dir out/netboot -key mode=install -key unattended=yes -key repo=http://…
func netbootCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("netboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "qemu-x86_64", "board the bundle boots")
	out := fs.String("out", "out", "build output folder (passeur build)")
	dir := fs.String("dir", "", "folder to write the bundle to (serve it over HTTP)")
	keys := keyList{}
	fs.Var(keys, "key", "a passeur key of the run, name=value (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("netboot: give -dir")
	}
	b, err := board.Load(*boardName)
	if err != nil {
		return err
	}
	bundle := netboot.Bundle{Kernel: filepath.Join(*out, b.Name, "vmlinuz"), Initramfs: filepath.Join(*out, b.Name, "initramfs.cpio.zst"),
		BoardCmdline: b.Kernel.Cmdline, Keys: keys}
	if err := netboot.Write(*dir, bundle); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: serve it over HTTP and chain http://<server>/%s from iPXE\n", *dir, netboot.ScriptFile)
	return nil
}
