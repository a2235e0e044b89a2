package board

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestLoadEveryBoard(t *testing.T) {
	if len(Names()) == 0 {
		t.Fatal("no boards embedded")
	}
	for _, n := range Names() {
		if _, err := Load(n); err != nil {
			t.Errorf("Load(%q): %v", n, err)
		}
	}
}

func TestQEMUBoardCoversTheBuses(t *testing.T) {
	b, err := Load("qemu-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"virtio_blk", "virtio_scsi", "ahci", "nvme", "xhci_pci", "usb_storage", "uas",
		"ext4", "crc32c_generic", "vfat", "nls_cp437", "nls_ascii", "xfs", "squashfs", "overlay", "vsock_loopback", "loop", "virtio_rng"} {
		if !slices.Contains(b.Modules, m) {
			t.Errorf("qemu-x86_64 lacks module %s", m)
		}
	}
	// efivarfs refuses (ENODEV) a kernel not started by UEFI: loaded at
	// every boot it would fail the BIOS boots.
	if slices.Contains(b.Modules, "efivarfs") || !slices.Contains(b.ModulesOnDemand, "efivarfs") {
		t.Errorf("qemu-x86_64: efivarfs must be on demand only (modules %v, on demand %v)", b.Modules, b.ModulesOnDemand)
	}
}

func TestLoadUnknown(t *testing.T) {
	if _, err := Load("vax"); !errors.Is(err, ErrUnknownBoard) {
		t.Errorf("Load(vax) = %v, want ErrUnknownBoard", err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"name":"x"}`, "no arch"},
		{`{"name":"x","arch":"amd64","kernel":{"debian_package":"k"},"console":"ttyS0","modules":["a"],"extra":1}`, "unknown field"},
		{`{"name":"x","arch":"amd64","kernel":{"debian_package":"k"},"console":"ttyS0","modules":["a"],"module_params":{"b":"x=1"}}`, "not in modules"},
	} {
		_, err := Parse([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", tc.json, err, tc.want)
		}
	}
}
