// Package network brings the rescue system onto the LAN: DHCPv4 on the
// wired interfaces (u-root's dhclient over insomniacslk/dhcp, addresses and
// routes set through netlink), reporting the lease it took.
package network

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Lease is the configuration one interface received.
type Lease struct {
	Interface string   `json:"interface"`
	MAC       string   `json:"mac"`
	Address   string   `json:"address"` // CIDR form, e.g. 10.0.2.15/24
	Router    string   `json:"router,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	Server    string   `json:"server"` // the DHCP server that answered
}

// leaseOf reads the configuration interface ifname (with MAC mac) took
// from the DHCP acknowledgement m.
func leaseOf(ifname, mac string, m *dhcpv4.DHCPv4) *Lease {
	ones, _ := m.SubnetMask().Size()
	lease := &Lease{
		Interface: ifname,
		MAC:       mac,
		Address:   (&net.IPNet{IP: m.YourIPAddr, Mask: net.CIDRMask(ones, 32)}).String(),
		Server:    m.ServerIdentifier().String(),
	}
	if r := m.Router(); len(r) > 0 {
		lease.Router = r[0].String()
	}
	for _, d := range m.DNS() {
		lease.DNS = append(lease.DNS, d.String())
	}
	return lease
}
