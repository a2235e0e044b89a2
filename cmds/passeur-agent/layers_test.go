package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/passeur/passeur/"

// hostOnly are the packages that only a host may run: the QEMU harness and
// the reference appliance's fixtures, the builders of images, keys and
// netboot bundles, and the tools they build with.
var hostOnly = []string{
	module + "qemu",
	module + "tests",
	module + "image/builder",
	module + "image/rescue",
	module + "image/kernel",
	module + "image/kmod",
	module + "image/usbkey",
	module + "image/netboot",
	module + "cmds/",
	"github.com/u-root/mkuimage",
	"github.com/u-root/gobusybox",
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Skipf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

// TestAgentLinksOnlyTheRescue: PID 1 carries nothing a host runs.
func TestAgentLinksOnlyTheRescue(t *testing.T) {
	deps := goList(t, "-deps", ".")
	if len(deps) < 50 {
		t.Fatalf("go list -deps gave %d packages: %v", len(deps), deps)
	}
	for _, d := range deps {
		if d == module+"cmds/passeur-agent" {
			continue
		}
		for _, h := range hostOnly {
			if d == h || strings.HasPrefix(d, strings.TrimSuffix(h, "/")+"/") {
				t.Errorf("the agent links %s, host-side code", d)
			}
		}
	}
}

// TestLayers: what the host builds (image/) never imports what runs in the
// rescue (initramfs/); the rescue may use the formats image/ shares.
func TestLayers(t *testing.T) {
	lines := goList(t, "-f", "{{.ImportPath}}:{{join .Imports \",\"}},{{join .TestImports \",\"}},{{join .XTestImports \",\"}}", module+"image/...", module+"initramfs/...")
	n := 0
	for _, l := range lines {
		pkg, imps, _ := strings.Cut(l, ":")
		n++
		for _, imp := range strings.Split(imps, ",") {
			switch {
			case strings.HasPrefix(pkg, module+"image/") && strings.HasPrefix(imp, module+"initramfs/"):
				t.Errorf("%s imports %s: image/ must not depend on the rescue", pkg, imp)
			case strings.HasPrefix(pkg, module+"initramfs/") && (strings.HasPrefix(imp, module+"qemu") || strings.HasPrefix(imp, module+"tests")):
				t.Errorf("%s imports %s: the rescue must not depend on the test harness", pkg, imp)
			}
		}
	}
	if n < 30 {
		t.Fatalf("go list saw %d packages", n)
	}
}
