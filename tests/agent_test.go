package tests

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/qemu"
)

// TestBadKeyAndShell boots with a misspelt passeur key and the debug shell:
// the key is reported as an error event naming it, DHCP asked for on a
// machine without NIC fails with a named error, the agent still comes up,
// the shell runs commands on the console, and poweroff from it ends the VM.
func TestBadKeyAndShell(t *testing.T) {
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd,
		Cmdline: "passeur.mdoe=install passeur.mode=shell passeur.net=dhcp"})

	ev, err := vm.WaitEvent("error", bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Step, Error string }
	if err := ev.Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Step != "cmdline" || !strings.Contains(e.Error, `unknown passeur key "passeur.mdoe"`) {
		t.Errorf("error event = %+v, want the unknown key passeur.mdoe named", e)
	}
	if ev, err = vm.WaitEvent("error", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if err := ev.Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Step != "network" || !strings.Contains(e.Error, "no DHCP lease on any interface: no network interface") {
		t.Errorf("error event = %+v, want no DHCP lease", e)
	}
	if _, err := vm.WaitEvent("inventory", bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitEvent("shell", bootTimeout); err != nil {
		t.Fatal(err)
	}
	// Type until the shell answers: it may still be starting.
	for i := 0; ; i++ {
		vm.Type("echo shell-$((6*7))\n")
		if _, err := vm.Expect(regexp.MustCompile(`shell-42`), 20*time.Second); err == nil {
			break
		} else if i == 5 {
			t.Fatal(err)
		}
	}
	vm.Type("ls /bbin; cat /proc/cmdline\n")
	for _, want := range []string{`dmesg`, `gosh`, `passeur\.mode=shell`} {
		if _, err := vm.Expect(regexp.MustCompile(want), exitTimeout); err != nil {
			t.Errorf("shell output lacks %s: %v", want, err)
		}
	}
	if got := len(vm.Events()); got == 0 {
		t.Error("no events at all")
	}
	// Keys typed while gosh runs a command and takes the terminal back
	// may be lost: type until it acts. A power-off under TCG on a loaded host was once seen to take more
	// than 20 s after the shell ran it: each attempt waits a minute.
	for i := 0; ; i++ {
		vm.Type("poweroff\n")
		err := vm.Wait(time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, qemu.ErrTimeout) || i == 2 {
			t.Fatalf("poweroff from the shell: %v", err)
		}
	}
}
