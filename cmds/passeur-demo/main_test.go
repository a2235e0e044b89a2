package main

import (
	"strings"
	"testing"
)

func TestPlainText(t *testing.T) {
	var b strings.Builder
	p := &plainText{w: &b}
	// A sequence cut between two writes, as a pipe may deliver it.
	for _, s := range []string{"\x1b[2J\x1b[01;01H\x1b[=3hBds", "Dxe: boot\x1b[", "0mok\n"} {
		if n, err := p.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "BdsDxe: bootok\n" {
		t.Errorf("got %q", got)
	}
}
