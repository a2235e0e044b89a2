package network

import (
	"net"
	"slices"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestLeaseOf(t *testing.T) {
	m, err := dhcpv4.New(
		dhcpv4.WithYourIP(net.IPv4(192, 168, 7, 20)),
		dhcpv4.WithNetmask(net.CIDRMask(23, 32)),
		dhcpv4.WithRouter(net.IPv4(192, 168, 6, 1)),
		dhcpv4.WithDNS(net.IPv4(192, 168, 6, 2), net.IPv4(192, 168, 6, 3)),
		dhcpv4.WithServerIP(net.IPv4(192, 168, 6, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 6, 1))),
	)
	if err != nil {
		t.Fatal(err)
	}
	got := leaseOf("eth0", "52:54:00:12:34:56", m)
	if got.Address != "192.168.7.20/23" || got.Router != "192.168.6.1" || got.Server != "192.168.6.1" ||
		!slices.Equal(got.DNS, []string{"192.168.6.2", "192.168.6.3"}) || got.Interface != "eth0" {
		t.Errorf("leaseOf = %+v", got)
	}
	bare, _ := dhcpv4.New(dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15)), dhcpv4.WithNetmask(net.CIDRMask(24, 32)))
	if l := leaseOf("eth0", "", bare); l.Router != "" || l.DNS != nil || l.Address != "10.0.2.15/24" {
		t.Errorf("lease without router or DNS = %+v", l)
	}
}
