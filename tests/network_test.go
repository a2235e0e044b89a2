package tests

import (
	"slices"
	"testing"

	"github.com/passeur/passeur/initramfs/network"
	"github.com/passeur/passeur/qemu"
)

// TestDHCP boots with a NIC on QEMU's user network (restrict=on) and
// passeur.net=dhcp: the agent takes the lease slirp's DHCP server offers and
// reports it, and lists the NIC up in the inventory.
func TestDHCP(t *testing.T) {
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Net: true,
		Cmdline: "passeur.net=dhcp passeur.mode=poweroff"})
	ev, err := vm.WaitEvent("network", bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var lease network.Lease
	if err := ev.Decode(&lease); err != nil {
		t.Fatal(err)
	}
	// QEMU's user network hands out these; with restrict=on, slirp's DHCP
	// server offers neither router nor DNS server.
	want := network.Lease{Interface: "eth0", MAC: "52:54:00:12:34:56", Address: "10.0.2.15/24", Server: "10.0.2.2"}
	if lease.Interface != want.Interface || lease.MAC != want.MAC || lease.Address != want.Address ||
		lease.Router != want.Router || !slices.Equal(lease.DNS, want.DNS) || lease.Server != want.Server {
		t.Errorf("lease %+v, want %+v", lease, want)
	}
	inv, err := vm.WaitEvent("inventory", bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var links struct {
		Links []struct {
			Name, MAC string
			Up        bool
		}
	}
	if err := inv.Decode(&links); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range links.Links {
		found = found || (l.Name == "eth0" && l.MAC == want.MAC && l.Up)
	}
	if !found {
		t.Errorf("inventory links %+v lack eth0 up with MAC %s", links.Links, want.MAC)
	}
	if err := vm.Wait(exitTimeout); err != nil {
		t.Error(err)
	}
}
