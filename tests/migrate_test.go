package tests

import (
	"reflect"
	"strings"
	"testing"

	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
)

// migration is one boot of the rescue image in unattended migrate mode,
// followed, through kexec, by the new system's first boot.
type migration struct {
	rescueRun
	health  *camrec.Report // nil when the new system never reported
	console string
}

// migrate boots the rescue image over disks in unattended migrate mode and
// waits for the new system's health report, or for the rescue system to
// have nothing more to do (a refusal).
func migrate(t *testing.T, disks []qemu.Disk, cmdline string) migration {
	t.Helper()
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: disks,
		Cmdline: "passeur.unattended=yes passeur.mode=migrate " + cmdline})
	var m migration
	if _, err := vm.WaitAny(6*bootTimeout, "health", "idle"); err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	m.rescueRun, m.console = collect(vm), vm.Console()
	if ev := m.event("health"); ev != nil {
		m.health = new(camrec.Report)
		if err := ev.Decode(m.health); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// bootV8 boots the system disk alone with the data disks under UEFI, as the
// box will from now on, and returns camrec's health report.
func bootV8(t *testing.T, disks []qemu.Disk) camrec.Report {
	t.Helper()
	vm := qemu.Test(t, qemu.Options{Board: qemu.BuiltArtifacts(t, "qemu-x86_64").Board, UEFI: true, Disks: disks})
	ev, err := vm.WaitEvent("health", 2*bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var got camrec.Report
	if err := ev.Decode(&got); err != nil {
		t.Fatal(err)
	}
	for _, e := range vm.Events() {
		if e.Type == "error" {
			t.Errorf("camrec 8 error event: %s", e.Raw)
		}
	}
	vm.Stop()
	return got
}

// TestMigrate migrates fixtures (a) and (b) unattended from the key: the
// new system, booted by kexec and then under UEFI from its own disk,
// reports what camrec 7 held; the data disks and (b)'s kept data partition
// are byte for byte unchanged.
func TestMigrate(t *testing.T) {
	r := camrec8(t)
	for _, tc := range []struct {
		v    camrec.Variant
		kept int // partition number of the kept data partition before, 0 for none
	}{{camrec.VariantA, 0}, {camrec.VariantB, 2}} {
		t.Run(string(tc.v), func(t *testing.T) {
			a := v7(t, tc.v, camrec.Options{Seed: 21})
			key := passeurKey(t, r)
			data := fixtureData(a)
			before := hashes(t, data)
			var keptSum string
			if tc.kept > 0 {
				img, _ := partition(t, a.System.Path, tc.kept)
				keptSum = fileSHA(t, img)
			}
			m := migrate(t, append(a.Disks(), key), "")
			if len(m.errors) > 0 || m.health == nil {
				t.Fatalf("errors %v, health %v", m.errors, m.health)
			}
			if !reflect.DeepEqual(*m.health, a.Expected) {
				t.Errorf("health report after kexec\n got %+v\nwant %+v", *m.health, a.Expected)
			}
			sameHashes(t, "migration", before, hashes(t, data))
			if tc.kept > 0 {
				img, _ := partition(t, a.System.Path, 4)
				if fileSHA(t, img) != keptSum {
					t.Error("the kept data partition changed")
				}
			}
			if !strings.Contains(m.console, "booting the new system (kexec)") {
				t.Error("the new system was not started by kexec")
			}
			if got := bootV8(t, a.Disks()); !reflect.DeepEqual(got, a.Expected) {
				t.Errorf("health report under UEFI\n got %+v\nwant %+v", got, a.Expected)
			}
			sameHashes(t, "first boots of camrec 8", before, hashes(t, data))
			fsckClean(t, key.Path)
		})
	}
}

// fixtureData is the appliance's data disks, without its system disk.
func fixtureData(a *camrec.Appliance) []qemu.Disk {
	return a.Disks()[1:]
}
