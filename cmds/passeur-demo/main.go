// Command passeur-demo boots the rescue image of a board in QEMU over a set
// of demo disks (one per bus, made by the host's mkfs and sfdisk), shows its
// console live, and ends with the inventory it reported. ./build.sh demo
// runs it after building.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/qemu"
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
	timeout := fs.Duration("timeout", 5*time.Minute, "how long the VM may take")
	if err := fs.Parse(args); err != nil {
		return err
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

	fmt.Fprintln(stdout, "== demo disks, made with mkfs.ext4, mkfs.vfat, mkfs.xfs and sfdisk:")
	disks, err := fixture.FiveBuses(dir)
	if err != nil {
		return err
	}
	for _, d := range disks {
		fmt.Fprintf(stdout, "   %-12s %-10s %s\n", d.Bus, d.Serial, d.Content)
	}
	fmt.Fprintln(stdout, "== booting the rescue image under QEMU (TCG); serial console follows")
	vm, err := qemu.Start(qemu.Options{
		Board: b, Kernel: filepath.Join(*out, b.Name, "vmlinuz"), Initrd: filepath.Join(*out, b.Name, "initramfs.cpio.zst"),
		Disks: fixture.QEMU(disks), Cmdline: "passeur.mode=poweroff", Dir: dir, Console: stdout,
	})
	if err != nil {
		return err
	}
	defer vm.Stop()
	ready, err := vm.WaitEvent("ready", *timeout)
	if err != nil {
		return err
	}
	ev, err := vm.WaitEvent("inventory", *timeout)
	if err != nil {
		return err
	}
	var inv struct{ Disks []inventory.Disk }
	if err := ev.Decode(&inv); err != nil {
		return err
	}
	var r struct{ Uptime float64 }
	ready.Decode(&r)
	if err := vm.Wait(*timeout); err != nil {
		return fmt.Errorf("the VM did not power off: %w", err)
	}
	fmt.Fprintf(stdout, "\n== the rescue image was ready %.1f s after the kernel started and found %d disks:\n", r.Uptime, len(inv.Disks))
	return inventory.WriteTable(stdout, inv.Disks)
}
