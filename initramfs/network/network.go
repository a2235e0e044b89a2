// Package network brings the rescue system onto the LAN: DHCPv4 on the
// wired interfaces (u-root's dhclient over insomniacslk/dhcp, addresses and
// routes set through netlink), reporting the lease it took.
package network

// Lease is the configuration one interface received.
type Lease struct {
	Interface string   `json:"interface"`
	MAC       string   `json:"mac"`
	Address   string   `json:"address"` // CIDR form, e.g. 10.0.2.15/24
	Router    string   `json:"router,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	Server    string   `json:"server"` // the DHCP server that answered
}
