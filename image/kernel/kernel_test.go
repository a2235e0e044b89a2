package kernel

import "testing"

func TestResolveDepends(t *testing.T) {
	out := "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n"
	if got := ResolveDepends(out); got != "linux-image-6.1.0-56-amd64" {
		t.Errorf("ResolveDepends = %q", got)
	}
	versioned := "linux-image-6.1.0-56-amd64\n  PreDepends: kmod\n  Depends: initramfs-tools\n  Recommends: firmware-linux-free\n"
	if got := ResolveDepends(versioned); got != "" {
		t.Errorf("a versioned package resolved to %q", got)
	}
}
