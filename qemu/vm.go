// Package qemu runs a board under QEMU for tests and the demo: a VM with
// disks on chosen buses, booted from a kernel and initramfs, its serial
// console captured to a file and parsed into passeur events.
//
// Three ways to boot: direct kernel boot (Kernel, Initrd), the firmware
// starting what the disks hold (UEFI: OVMF, e.g. from a USB key), and
// netboot through the NIC's iPXE ROM (Netboot, under OVMF or SeaBIOS).
package qemu

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/passeur/passeur/board"
)

// Bus is how a disk is attached to the VM.
type Bus string

// The buses a disk can be on.
const (
	VirtioBlk  Bus = "virtio-blk"
	VirtioSCSI Bus = "virtio-scsi"
	SATA       Bus = "sata"
	NVMe       Bus = "nvme"
	USB        Bus = "usb"
)

// Buses lists every bus, in the order the tests use them.
var Buses = []Bus{VirtioBlk, VirtioSCSI, SATA, NVMe, USB}

// Disk is a raw image file attached to the VM.
type Disk struct {
	Path     string
	Bus      Bus
	Serial   string // the serial the guest sees; defaults to passeur-d<N>
	ReadOnly bool
	// WriteBps limits writes to the disk, in bytes per second (a slow USB
	// key), when not zero.
	WriteBps int64
}

// Options describe a VM.
type Options struct {
	Board   *board.Board
	Kernel  string // vmlinuz
	Initrd  string // initramfs
	Cmdline string // appended to the board's kernel command line
	Disks   []Disk
	// MemoryMiB overrides the board's memory size when not zero.
	MemoryMiB int
	// Net adds a virtio NIC on QEMU user networking, always restrict=on:
	// the guest reaches nothing outside this machine.
	Net bool
	// GuestFwd forwards the guest's TCP connections to an address of the
	// user network ("10.0.2.100:80") to a host address ("127.0.0.1:8080"):
	// how a guest reaches a test server on the host's loopback. Each
	// connection gets its own socat (QEMU's tcp: form would connect once,
	// at start, and serve only the guest's first connection). socat logs
	// nowhere: QEMU would pass its messages to the guest as data.
	GuestFwd map[string]string
	// Dir holds the console log; it must exist.
	Dir string
	// Console, when set, receives the serial console live (the demo shows it).
	Console io.Writer
	// UEFI boots the firmware (OVMF) instead of Kernel and Initrd: it
	// starts what the disks hold, as a PC does.
	UEFI bool
	// Vars, with UEFI, is the firmware's variable store of the machine,
	// kept across its VMs as a PC's flash keeps it across power cuts:
	// made from OVMF's blank store the first time. Empty: each VM its own
	// blank copy.
	Vars string
	// Netboot boots through the NIC's iPXE ROM: QEMU's user network hands
	// out Netboot.BootFile from the folder Netboot.TFTP (an iPXE script).
	// It implies Net; with UEFI, OVMF runs iPXE's EFI driver.
	Netboot *Netboot
	// Monitor opens QEMU's human monitor on a socket in Dir, for
	// VM.Monitor (pulling a disk out while the guest runs).
	Monitor bool
}

// Netboot is what the user network's DHCP and TFTP hand out to iPXE.
type Netboot struct {
	TFTP     string // folder served by TFTP
	BootFile string // DHCP file name, in TFTP
}

// DiskID is the QEMU device id of the i-th disk, for device_del.
func DiskID(i int) string { return fmt.Sprintf("disk%d", i) }

// OVMF firmware files, from Debian's ovmf package.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Args returns QEMU's command line for o (binary excluded).
func (o Options) Args() ([]string, error) {
	b := o.Board
	if b == nil {
		return nil, fmt.Errorf("qemu: no board")
	}
	mem := b.QEMU.MemoryMiB
	if o.MemoryMiB != 0 {
		mem = o.MemoryMiB
	}
	args := []string{
		"-machine", b.QEMU.Machine, "-accel", b.QEMU.Accel, "-cpu", b.QEMU.CPU,
		"-m", fmt.Sprint(mem), "-smp", fmt.Sprint(b.QEMU.SMP),
		"-display", "none", "-serial", "stdio",
		"-no-reboot", "-nodefaults",
		// DHCP and the kernel's RNG wait for entropy without it.
		"-device", "virtio-rng-pci",
	}
	if o.Monitor {
		args = append(args, "-monitor", "unix:"+filepath.Join(o.Dir, "monitor.sock")+",server=on,wait=off")
	} else {
		args = append(args, "-monitor", "none")
	}
	switch {
	case o.UEFI:
		// The variable store is written by the firmware: each VM its copy,
		// or the machine's (Vars).
		vars := o.Vars
		if vars == "" {
			vars = filepath.Join(o.Dir, "OVMF_VARS.fd")
		}
		if _, err := os.Stat(vars); o.Vars == "" || err != nil {
			data, err := os.ReadFile(OVMFVars)
			if err != nil {
				return nil, fmt.Errorf("qemu: UEFI: %w (apt-get install ovmf)", err)
			}
			if err := os.WriteFile(vars, data, 0o644); err != nil {
				return nil, err
			}
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+optValue(vars))
	case o.Netboot != nil:
		// SeaBIOS, QEMU's default firmware, runs the NIC's iPXE ROM.
	case o.Kernel == "" || o.Initrd == "":
		return nil, fmt.Errorf("qemu: direct kernel boot needs a kernel and an initrd")
	default:
		args = append(args, "-kernel", o.Kernel, "-initrd", o.Initrd,
			"-append", strings.TrimSpace(b.Kernel.Cmdline+" "+o.Cmdline))
	}
	if o.Net || o.Netboot != nil {
		netdev := "user,id=n0,restrict=on"
		nic := "virtio-net-pci,netdev=n0"
		if nb := o.Netboot; nb != nil {
			if strings.ContainsAny(nb.TFTP+nb.BootFile, ",") || nb.TFTP == "" || nb.BootFile == "" {
				return nil, fmt.Errorf("qemu: netboot needs a TFTP folder and a boot file, without commas")
			}
			netdev += ",tftp=" + nb.TFTP + ",bootfile=" + nb.BootFile
			nic += ",bootindex=0"
		}
		guests := make([]string, 0, len(o.GuestFwd))
		for g := range o.GuestFwd {
			guests = append(guests, g)
		}
		sort.Strings(guests)
		for _, g := range guests {
			netdev += ",guestfwd=tcp:" + g + "-cmd:socat -lf /dev/null STDIO TCP:" + o.GuestFwd[g]
		}
		args = append(args, "-netdev", netdev, "-device", nic)
	}
	d, err := diskArgs(o.Disks)
	if err != nil {
		return nil, err
	}
	return append(args, d...), nil
}

// optValue is s as the value of a QEMU option: its commas doubled, which
// QEMU would take for the next option (a test's folder is named after a
// subtest, commas and all).
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// diskArgs attaches each disk on its bus, adding each controller once.
func diskArgs(disks []Disk) ([]string, error) {
	var args []string
	controllers := map[Bus]bool{}
	ahciPort := 0
	controller := func(bus Bus, dev string) {
		if !controllers[bus] {
			args = append(args, "-device", dev)
			controllers[bus] = true
		}
	}
	for i, d := range disks {
		id := fmt.Sprintf("d%d", i)
		serial := d.Serial
		if serial == "" {
			serial = fmt.Sprintf("passeur-d%d", i)
		}
		drive := fmt.Sprintf("file=%s,if=none,id=%s,format=raw,cache=unsafe", optValue(d.Path), id)
		if d.ReadOnly {
			drive += ",readonly=on"
		}
		if d.WriteBps > 0 {
			drive += fmt.Sprintf(",throttling.bps-write=%d", d.WriteBps)
		}
		var dev string
		switch d.Bus {
		case VirtioBlk:
			dev = fmt.Sprintf("virtio-blk-pci,drive=%s,serial=%s", id, serial)
		case VirtioSCSI:
			controller(d.Bus, "virtio-scsi-pci,id=scsi0")
			dev = fmt.Sprintf("scsi-hd,drive=%s,bus=scsi0.0,serial=%s", id, serial)
		case SATA:
			controller(d.Bus, "ahci,id=ahci0")
			if ahciPort == 6 {
				return nil, fmt.Errorf("qemu: more than 6 SATA disks")
			}
			dev = fmt.Sprintf("ide-hd,drive=%s,bus=ahci0.%d,serial=%s", id, ahciPort, serial)
			ahciPort++
		case NVMe:
			dev = fmt.Sprintf("nvme,drive=%s,serial=%s", id, serial)
		case USB:
			controller(d.Bus, "qemu-xhci,id=xhci")
			dev = fmt.Sprintf("usb-storage,drive=%s,bus=xhci.0,serial=%s", id, serial)
		default:
			return nil, fmt.Errorf("qemu: disk %s: unknown bus %q", d.Path, d.Bus)
		}
		args = append(args, "-drive", drive, "-device", dev+",id="+DiskID(i))
	}
	return args, nil
}
