package qemu

import (
	"strings"
	"testing"

	"github.com/passeur/passeur/board"
)

func TestArgs(t *testing.T) {
	b, err := board.Load("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Board: b, Kernel: "vmlinuz", Initrd: "initrd", Cmdline: "passeur.mode=poweroff", Net: true,
		Disks: []Disk{{Path: "a.img", Bus: VirtioBlk}, {Path: "b.img", Bus: SATA}, {Path: "c.img", Bus: SATA, Serial: "S2"},
			{Path: "d.img", Bus: USB, ReadOnly: true}, {Path: "e.img", Bus: NVMe}, {Path: "f.img", Bus: VirtioSCSI}, {Path: "/tmp/TestX/a,b/g.img", Bus: VirtioBlk}}}
	args, err := o.Args()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-append console=ttyS0,115200 loglevel=4 panic=-1 passeur.mode=poweroff",
		"-netdev user,id=n0,restrict=on",
		"-device virtio-rng-pci",
		"-device virtio-blk-pci,drive=d0,serial=passeur-d0",
		"-device ide-hd,drive=d1,bus=ahci0.0,serial=passeur-d1",
		"-device ide-hd,drive=d2,bus=ahci0.1,serial=S2",
		"file=d.img,if=none,id=d3,format=raw,cache=unsafe,readonly=on",
		"-device nvme,drive=d4,serial=passeur-d4",
		"-device scsi-hd,drive=d5,bus=scsi0.0,serial=passeur-d5",
		"file=/tmp/TestX/a,,b/g.img,if=none,id=d6", // a comma doubled
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	if strings.Count(line, "-device ahci,id=ahci0") != 1 || strings.Count(line, "qemu-xhci") != 1 {
		t.Errorf("controllers not added exactly once:\n%s", line)
	}
}

func TestArgsRejectsUnknownBus(t *testing.T) {
	b, _ := board.Load("qemu-x86_64")
	_, err := Options{Board: b, Kernel: "k", Initrd: "i", Disks: []Disk{{Path: "x", Bus: "floppy"}}}.Args()
	if err == nil {
		t.Error("unknown bus: want an error")
	}
}

func TestArgsNetboot(t *testing.T) {
	b, _ := board.Load("qemu-x86_64")
	o := Options{Board: b, Dir: t.TempDir(), Netboot: &Netboot{TFTP: "/srv/tftp", BootFile: "boot.ipxe"},
		GuestFwd: map[string]string{"10.0.2.100:80": "127.0.0.1:8080"}}
	args, err := o.Args()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"user,id=n0,restrict=on,tftp=/srv/tftp,bootfile=boot.ipxe,guestfwd=tcp:10.0.2.100:80-cmd:socat -lf /dev/null STDIO TCP:127.0.0.1:8080",
		"-device virtio-net-pci,netdev=n0,bootindex=0",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "-kernel") || strings.Contains(line, "pflash") {
		t.Errorf("SeaBIOS netboot with a -kernel or OVMF:\n%s", line)
	}
	o.Netboot.TFTP = "/a,b"
	if _, err := o.Args(); err == nil {
		t.Error("a TFTP folder with a comma was accepted")
	}
}
