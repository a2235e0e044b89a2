package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
)

// ErrNoLease is returned when no interface got a DHCP answer.
var ErrNoLease = errors.New("no DHCP lease on any interface")

// DHCP asks for an IPv4 lease on every wired interface, configures the
// first one that answers (address, route, resolv.conf) and returns it.
// retries bounds the attempts per interface, each waiting up to timeout.
func DHCP(ctx context.Context, timeout time.Duration, retries int) (*Lease, error) {
	links, err := wired()
	if err != nil {
		return nil, err
	}
	if len(links) == 0 {
		return nil, fmt.Errorf("%w: no network interface", ErrNoLease)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := dhclient.Config{Timeout: timeout, Retries: retries}
	var errs []error
	for r := range dhclient.SendRequests(ctx, links, true, false, cfg, 30*time.Second) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Interface.Attrs().Name, r.Err))
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			errs = append(errs, fmt.Errorf("configure %s: %w", r.Interface.Attrs().Name, err))
			continue
		}
		p4, ok := r.Lease.(*dhclient.Packet4)
		if !ok {
			continue
		}
		msg, _ := p4.Message()
		return leaseOf(r.Interface.Attrs().Name, r.Interface.Attrs().HardwareAddr.String(), msg), nil
	}
	return nil, fmt.Errorf("%w: %w", ErrNoLease, errors.Join(errs...))
}

// wired lists the interfaces DHCP is tried on: Ethernet devices, not
// loopback, bridges or virtual links.
func wired() ([]netlink.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list network links: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		if l.Type() == "device" && l.Attrs().EncapType == "ether" {
			out = append(out, l)
		}
	}
	return out, nil
}
