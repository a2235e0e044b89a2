package tests

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/plan"
	"github.com/passeur/passeur/initramfs/preflight"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// passeurKey makes a 512 MiB FAT32 key holding passeur's marker and the
// camrec 8 release signed with the key the rescue image trusts.
func passeurKey(t *testing.T, r camrecRelease) qemu.Disk {
	return makeKey(t, r, 512<<20, 32)
}

// makeKey makes a FAT key of size with the release; extra are more files
// to put on it, by path and content.
func makeKey(t *testing.T, r camrecRelease, size int64, fatBits int, extra ...map[string]string) qemu.Disk {
	t.Helper()
	files := map[string]string{}
	names, _ := filepath.Glob(filepath.Join(r.dir, "*"))
	for _, n := range names {
		files["releases/camrec-8.0.0/"+filepath.Base(n)] = n
	}
	img := filepath.Join(t.TempDir(), "key.img")
	contents := map[string]string{medialayout.Marker: `{"format":1}`}
	for _, e := range extra {
		for k, v := range e {
			contents[k] = v
		}
	}
	if err := fixture.Key(img, size, fatBits, files, contents); err != nil {
		t.Fatal(err)
	}
	return qemu.Disk{Path: img, Bus: qemu.USB, Serial: "PASSEUR-KEY"}
}

type planRun struct {
	roles  map[string]roles.Assignment // by disk serial
	err    string                      // the plan step's error, if any
	failed []string                    // names of the failed preflight checks
	plan   *plan.Plan
}

// runPlan boots the rescue image in unattended plan mode over disks and
// returns what it decided; every disk image must be byte for byte the same
// afterwards.
func runPlan(t *testing.T, disks []qemu.Disk) planRun {
	return runPlanWith(t, disks, "passeur.unattended=yes", nil)
}

// runPlanWith is runPlan with more kernel parameters and, when answer is
// set, a function that answers the questions on the console.
func runPlanWith(t *testing.T, disks []qemu.Disk, cmdline string, answer func(*qemu.VM)) planRun {
	t.Helper()
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	before := map[string]string{}
	for _, d := range disks {
		before[d.Path] = fileSHA(t, d.Path)
	}
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: disks, Cmdline: "passeur.mode=plan " + cmdline})
	if answer != nil {
		answer(vm)
	}
	var run planRun
	if _, err := vm.WaitEvent("idle", bootTimeout); err != nil {
		t.Fatal(err)
	}
	for _, ev := range vm.Events() {
		switch ev.Type {
		case "roles":
			var r struct{ Disks []roles.Assignment }
			if err := ev.Decode(&r); err != nil {
				t.Fatal(err)
			}
			run.roles = map[string]roles.Assignment{}
			for _, a := range r.Disks {
				run.roles[a.Disk.Serial] = a
			}
		case "preflight":
			var rep preflight.Report
			if err := ev.Decode(&rep); err != nil {
				t.Fatal(err)
			}
			for _, c := range rep.Checks {
				if !c.OK {
					run.failed = append(run.failed, c.Name)
				}
			}
		case "plan":
			run.plan = &plan.Plan{}
			if err := ev.Decode(run.plan); err != nil {
				t.Fatal(err)
			}
		case "error":
			var e struct{ Step, Error string }
			ev.Decode(&e)
			if e.Step == steps.Plan {
				run.err = e.Error
			} else {
				t.Errorf("error event: %s", ev.Raw)
			}
		}
	}
	vm.Stop()
	for _, d := range disks {
		if fileSHA(t, d.Path) != before[d.Path] {
			t.Errorf("disk %s (%s) changed", d.Serial, filepath.Base(d.Path))
		}
	}
	return run
}

func roleLine(run planRun) string {
	var s []string
	for serial, a := range run.roles {
		x := serial + "=" + string(a.Role)
		if a.Role == roles.System {
			x += fmt.Sprintf("(%s,%d kept)", a.Version, len(a.Volumes))
		}
		s = append(s, x)
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// TestRolesOfTheFixtures: on each v7 fixture, with disks on several buses
// and in another order, the rescue image finds the key, the system and the
// data disks from their content, and writes to none of them.
func TestRolesOfTheFixtures(t *testing.T) {
	r := camrec8(t)
	key := passeurKey(t, r)
	for _, tc := range sample(t, 2, []struct {
		variant camrec.Variant
		buses   []qemu.Bus // system, then data disks
		reverse bool
		want    string
	}{
		{camrec.VariantA, []qemu.Bus{qemu.VirtioBlk, qemu.SATA}, false,
			"CAMREC-DATA1=data CAMREC-SYS=system(7.14.0.3,0 kept) PASSEUR-KEY=install-media"},
		{camrec.VariantB, []qemu.Bus{qemu.VirtioBlk, qemu.SATA, qemu.NVMe}, false,
			"CAMREC-DATA1=data CAMREC-DATA2=data CAMREC-SYS=system(7.14.0.3,1 kept) PASSEUR-KEY=install-media"},
		{camrec.VariantB, []qemu.Bus{qemu.NVMe, qemu.VirtioSCSI, qemu.VirtioBlk}, true,
			"CAMREC-DATA1=data CAMREC-DATA2=data CAMREC-SYS=system(7.14.0.3,1 kept) PASSEUR-KEY=install-media"},
		{camrec.VariantC, []qemu.Bus{qemu.SATA, qemu.VirtioBlk}, true,
			"CAMREC-DATA1=data CAMREC-SYS=system(7.12.0.4,0 kept) PASSEUR-KEY=install-media"},
	}) {
		t.Run(fmt.Sprintf("%s-%s", tc.variant, tc.buses[0]), func(t *testing.T) {
			a, err := camrec.BuildV7(t.TempDir(), tc.variant, camrec.Options{Seed: 5, SegmentsPerCamera: 4})
			if err != nil {
				t.Fatal(err)
			}
			disks := a.Disks()
			for i := range disks {
				disks[i].Bus = tc.buses[i]
			}
			disks = append(disks, key)
			if tc.reverse {
				slices.Reverse(disks)
			}
			run := runPlan(t, disks)
			if got := roleLine(run); got != tc.want {
				t.Errorf("roles %s\nwant  %s", got, tc.want)
			}
			if tc.variant == camrec.VariantC {
				// 7.12 is outside the release's range: refused before any write.
				if !slices.Equal(run.failed, []string{"source version"}) || !strings.Contains(run.err, preflight.ErrFailed.Error()) || run.plan != nil {
					t.Errorf("7.12: failed checks %v, error %q, plan %v; want the source version refused and no plan", run.failed, run.err, run.plan)
				}
				return
			}
			if run.err != "" || len(run.failed) != 0 || run.plan == nil {
				t.Fatalf("plan refused: %s (failed checks %v)", run.err, run.failed)
			}
			var actions []string
			for _, p := range run.plan.Partitions {
				actions = append(actions, p.Action+" "+p.Name)
			}
			want := "write esp, write root, create state"
			if tc.variant == camrec.VariantB {
				want += ", keep data"
			}
			if got := strings.Join(actions, ", "); got != want {
				t.Errorf("plan partitions %q, want %q", got, want)
			}
			if len(run.plan.Untouched) != len(disks)-1 {
				t.Errorf("plan leaves %d disks untouched, want %d", len(run.plan.Untouched), len(disks)-1)
			}
		})
	}
}

// TestRolesRefusals: ambiguity is a named refusal, and nothing is written.
func TestRolesRefusals(t *testing.T) {
	r := camrec8(t)
	key := passeurKey(t, r)
	build := func(v camrec.Variant, seed int64) *camrec.Appliance {
		a, err := camrec.BuildV7(t.TempDir(), v, camrec.Options{Seed: seed, SegmentsPerCamera: 2})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	t.Run("two systems", func(t *testing.T) {
		longOnly(t, "roles' TestAssignRefusals refuses two systems unattended; the subtest after this one asks the operator under QEMU")
		one, two := build(camrec.VariantA, 1), build(camrec.VariantA, 2)
		second := two.System.Disk
		second.Serial = "CAMREC-SYS-2"
		data2 := two.Data[0].Disk
		data2.Serial = "CAMREC-DATA-2"
		run := runPlan(t, append(one.Disks(), second, data2, key))
		if !strings.Contains(run.err, roles.ErrTwoSystems.Error()) {
			t.Errorf("plan error %q, want %q", run.err, roles.ErrTwoSystems)
		}
	})
	t.Run("two systems, the operator chooses", func(t *testing.T) {
		one, two := build(camrec.VariantA, 5), build(camrec.VariantA, 6)
		second := two.System.Disk
		second.Serial = "CAMREC-SYS-2"
		data2 := two.Data[0].Disk
		data2.Serial = "CAMREC-DATA-2"
		run := runPlanWith(t, append(one.Disks(), second, data2, key), "", func(vm *qemu.VM) {
			if _, err := vm.Expect(regexp.MustCompile(`Which one is to be migrated\?`), bootTimeout); err != nil {
				t.Fatal(err)
			}
			// The choices are listed in disk order: find CAMREC-SYS-2's line.
			line, err := vm.Expect(regexp.MustCompile(`(\d)\) camrec 7\.14\.0\.3 on /dev/\w+ \(serial CAMREC-SYS-2`), exitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			vm.Type(line[:1] + "\n")
		})
		if run.err != "" || run.roles["CAMREC-SYS-2"].Role != roles.System || run.roles["CAMREC-SYS"].Role != roles.Unknown ||
			run.roles["CAMREC-DATA-2"].Role != roles.Data {
			t.Errorf("after choosing CAMREC-SYS-2: %s (error %q)", roleLine(run), run.err)
		}
	})
	t.Run("missing data disk", func(t *testing.T) {
		longOnly(t, "roles' TestAssignRefusals refuses a missing data volume")
		a := build(camrec.VariantA, 3)
		run := runPlan(t, []qemu.Disk{a.System.Disk, key})
		if !strings.Contains(run.err, roles.ErrMissingVolume.Error()) || !strings.Contains(run.err, "/srv/recordings/d1") {
			t.Errorf("plan error %q, want %q naming /srv/recordings/d1", run.err, roles.ErrMissingVolume)
		}
	})
	t.Run("cloned data disk", func(t *testing.T) {
		longOnly(t, "roles' TestAssignRefusals refuses a cloned data disk and a cloned data partition")
		a := build(camrec.VariantB, 4)
		clone := filepath.Join(t.TempDir(), "clone.img")
		if _, err := fixture.Run("", "cp", "--sparse=always", a.Data[1].Path, clone); err != nil {
			t.Fatal(err)
		}
		run := runPlan(t, append(a.Disks(), qemu.Disk{Path: clone, Bus: qemu.SATA, Serial: "CLONE"}, key))
		if !strings.Contains(run.err, roles.ErrClonedVolume.Error()) {
			t.Errorf("plan error %q, want %q", run.err, roles.ErrClonedVolume)
		}
	})
}

// TestPreflightRefusals: each unsafe situation fails its check by name, no
// plan is made, and nothing is written.
func TestPreflightRefusals(t *testing.T) {
	r := camrec8(t)
	appliance := func(o camrec.Options) *camrec.Appliance {
		o.Seed, o.SegmentsPerCamera = 9, 2
		a, err := camrec.BuildV7(t.TempDir(), camrec.VariantA, o)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range sample(t, 1, []struct {
		name  string
		disks func() []qemu.Disk
		want  string
	}{
		{"key not FAT32", func() []qemu.Disk { return append(appliance(camrec.Options{}).Disks(), makeKey(t, r, 512<<20, 16)) }, "install media"},
		{"key too small", func() []qemu.Disk { return append(appliance(camrec.Options{}).Disks(), makeKey(t, r, 256<<20, 32)) }, "media free space"},
		{"key read-only", func() []qemu.Disk {
			k := passeurKey(t, r)
			k.ReadOnly = true
			return append(appliance(camrec.Options{}).Disks(), k)
		}, "install media"},
		{"unreadable data volume", func() []qemu.Disk {
			a := appliance(camrec.Options{})
			// The data disk made again as btrfs with the volume's UUID: found
			// by the fstab's UUID=, but the board cannot mount it.
			v := a.Volumes[0]
			img := filepath.Join(t.TempDir(), "btrfs.img")
			if err := fixture.Blank(img, 128<<20); err != nil {
				t.Fatal(err)
			}
			if _, err := fixture.Run("", "mkfs.btrfs", "-q", "-U", v.UUID, "-L", v.Label, img); err != nil {
				t.Fatal(err)
			}
			return []qemu.Disk{a.System.Disk, {Path: img, Bus: qemu.SATA, Serial: "BTRFS"}, passeurKey(t, r)}
		}, "data volume /srv/recordings/d1"},
		{"target too small", func() []qemu.Disk {
			return append(appliance(camrec.Options{SystemDiskSize: 200 << 20}).Disks(), passeurKey(t, r))
		}, "target layout"},
	}) {
		t.Run(tc.name, func(t *testing.T) {
			run := runPlan(t, tc.disks())
			if !slices.Equal(run.failed, []string{tc.want}) || run.plan != nil || !strings.Contains(run.err, preflight.ErrFailed.Error()) {
				t.Errorf("failed checks %v, plan %v, error %q; want only %q failed and no plan", run.failed, run.plan != nil, run.err, tc.want)
			}
		})
	}
}
