package agent

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// upLoopback brings lo up: local services (the vsock and HTTP control
// channels of later steps) need it.
func upLoopback() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// listLinks lists the network interfaces through netlink.
func listLinks() ([]Link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list network links: %w", err)
	}
	var out []Link
	for _, l := range ls {
		a := l.Attrs()
		kind := l.Type()
		if a.EncapType == "loopback" {
			kind = "loopback"
		}
		out = append(out, Link{
			Name:  a.Name,
			MAC:   a.HardwareAddr.String(),
			Up:    a.Flags&net.FlagUp != 0,
			Kind:  kind,
			Index: a.Index,
		})
	}
	return out, nil
}
