package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// defaultClient bounds every phase of a request but the body, which the
// attempt's stall watchdog bounds instead: a connection, a TLS handshake
// and a response header each have a deadline; a body takes as long as it
// keeps flowing.
var defaultClient = &http.Client{Transport: &http.Transport{
	DialContext:            (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:    10 * time.Second,
	ResponseHeaderTimeout:  30 * time.Second,
	IdleConnTimeout:        90 * time.Second,
	MaxResponseHeaderBytes: 64 << 10,
}}

// sameHost is c (or the default client) following redirects only to the
// first request's host and to hosts: a repository named on the command
// line cannot send the rescue system to fetch from anywhere else. c itself
// is left as it was.
func sameHost(c *http.Client, hosts []string) *http.Client {
	if c == nil {
		c = defaultClient
	}
	own := *c
	next := c.CheckRedirect
	own.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from, to := via[0].URL, req.URL.Host
		if !strings.EqualFold(to, from.Host) && !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, to) }) {
			return fmt.Errorf("%w: %s leads to %s", ErrRedirect, from, req.URL)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &own
}
