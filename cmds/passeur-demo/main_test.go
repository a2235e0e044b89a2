package main

import (
	"strings"
	"testing"
)

func TestPlainText(t *testing.T) {
	var b strings.Builder
	p := &plainText{w: &b}
	// A sequence cut between two writes, as a pipe may deliver it.
	// A sequence and a UTF-8 character cut between writes, as a pipe may
	// deliver them; code page 437 frame bytes dropped.
	for _, s := range []string{"\x1b[2J\x1b[01;01H\x1b[=3hBds", "Dxe: boot\x1b[", "0mok \xe2\x80", "\xa6 \xc4\xc4\xb3\xcd\n"} {
		if n, err := p.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "BdsDxe: bootok … \n" {
		t.Errorf("got %q", got)
	}
}
