package tests

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// cutPoint is a journal record after which the power goes.
type cutPoint struct{ step, state string }

func (c cutPoint) String() string { return strings.Trim(c.step+"-"+c.state, "-") }

// backupCuts are the points of a backup the power is cut at.
var backupCuts = []cutPoint{
	{"", journal.StateRun}, {steps.Backup, journal.StateBegun}, {steps.Backup, journal.StateDone},
	{steps.Verify, journal.StateBegun}, {steps.Verify, journal.StateDone}, {steps.Complete, journal.StateDone},
}

// cutAt boots a backup and kills QEMU, as a power cut, right after the
// journal records point.
func cutAt(t *testing.T, disks []qemu.Disk, point cutPoint) {
	t.Helper()
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: disks, Cmdline: "passeur.unattended=yes passeur.mode=backup"})
	for {
		ev, err := vm.WaitEvent("journal", bootTimeout/2)
		if err != nil {
			t.Fatalf("waiting for %s: %v", point, err)
		}
		var rec journal.Record
		ev.Decode(&rec)
		if rec.Step == point.step && rec.State == point.state {
			break
		}
	}
	vm.Stop()
}

// checkNeverPartial asserts the key holds one run for the host, and that
// if it is marked complete, it verifies.
func checkNeverPartial(t *testing.T, key, host string) string {
	t.Helper()
	runs := runDirs(t, keyTree(t, key), host)
	if len(runs) != 1 {
		t.Fatalf("%d run folders after a power cut, want 1 taken up again: %v", len(runs), runs)
	}
	if backup.IsComplete(runs[0]) {
		if err := sha256sumOK(runs[0]); err != nil {
			t.Fatalf("marked complete but: %v", err)
		}
	}
	return runs[0]
}

// TestBackupPowerCuts: the power is cut at six points of a backup, one
// after the other, each boot taking up the run the previous one left; the
// last boot ends with a complete backup that verifies, in the same folder,
// and no boot leaves a partial backup marked complete. The long run cuts
// at each point on its own instead.
func TestBackupPowerCuts(t *testing.T) {
	longOnly(t, "the host step machine (initramfs/agent TestStepMachine) cuts a backup at every journal record and inside every file, and TestMigratePowerCuts cuts a migration's backup under QEMU")
	r := camrec8(t)
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 14})
	for _, p := range backupCuts {
		t.Run(p.String(), func(t *testing.T) {
			key := passeurKey(t, r)
			disks := append(a.Disks(), key)
			before := hashes(t, a.Disks())
			cutAt(t, disks, p)
			checkNeverPartial(t, key.Path, "camrec-a")
			finishAfterCuts(t, disks, key.Path, 1)
			sameHashes(t, "power cut", before, hashes(t, a.Disks()))
		})
	}
}

// finishAfterCuts boots once more: the run is taken up and completes.
func finishAfterCuts(t *testing.T, disks []qemu.Disk, key string, minResumed int) {
	t.Helper()
	run := rescue(t, disks, "passeur.mode=backup")
	if len(run.errors) > 0 {
		t.Fatalf("errors after the power cuts: %v", run.errors)
	}
	var done struct{ Resumed bool }
	run.decode(t, "backup", &done)
	if !done.Resumed {
		t.Error("the backup was not taken up: started over")
	}
	dir := checkNeverPartial(t, key, "camrec-a")
	if !backup.IsComplete(dir) {
		t.Fatal("not complete")
	}
	if err := sha256sumOK(dir); err != nil {
		t.Fatal(err)
	}
	recs, err := journal.Read(filepath.Join(dir, journal.File))
	if err != nil {
		t.Fatal(err)
	}
	resumed := 0
	for _, r := range recs {
		if r.State == journal.StateResumed {
			resumed++
		}
	}
	if resumed < minResumed {
		t.Errorf("journal records %d resumptions, want at least %d", resumed, minResumed)
	}
}

// freeBytes reads a FAT image's free space with mtools.
func freeBytes(t *testing.T, img string) int64 {
	out, err := fixture.Run("", "mdir", "-i", img, "::/")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`([\d ]+) bytes free`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mdir: %s", out)
	}
	n, _ := strconv.ParseInt(strings.ReplaceAll(m[1], " ", ""), 10, 64)
	return n
}

// TestBackupMediaFailures: a read-only key, a key that fills up during the
// backup and a key pulled out during it each stop the run with a named
// error, write nothing to the system and data disks and mark nothing
// complete; a good key afterwards gets a complete backup.
func TestBackupMediaFailures(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 15})
	before := hashes(t, a.Disks())

	t.Run("read-only", func(t *testing.T) {
		longOnly(t, "TestPreflightRefusals has a read-only key among its cases, and media.Mount names it ErrReadOnly")
		key := passeurKey(t, r)
		key.ReadOnly = true
		keyHash := fileSHA(t, key.Path)
		run := rescue(t, append(a.Disks(), key), "passeur.mode=backup")
		if len(run.errors) != 1 || !strings.Contains(run.errors[0], "read-only") || run.event("backup") != nil {
			t.Errorf("errors %v", run.errors)
		}
		t.Logf("read-only key: %v", run.errors)
		if fileSHA(t, key.Path) != keyHash {
			t.Error("the read-only key changed")
		}
	})

	t.Run("full", func(t *testing.T) {
		// A recorder with a 70 KiB index, and 48 KiB left on the key: the
		// journal and the console log fit, the index does not.
		big := v7(t, camrec.VariantA, camrec.Options{Seed: 16, SegmentsPerCamera: 400, SegmentSize: 4 << 10})
		bigBefore := hashes(t, big.Disks())
		key := makeKey(t, r, 64<<20, 32)
		filler := filepath.Join(t.TempDir(), "filler.bin")
		if err := fixture.Blank(filler, freeBytes(t, key.Path)-48<<10); err != nil {
			t.Fatal(err)
		}
		if _, err := fixture.Run("", "mcopy", "-i", key.Path, filler, "::/filler.bin"); err != nil {
			t.Fatal(err)
		}
		run := rescue(t, append(big.Disks(), key), "passeur.mode=backup passeur.debug=no-space-check")
		if len(run.errors) != 1 || !strings.Contains(run.errors[0], media.ErrFull.Error()) || !strings.Contains(run.errors[0], camrec.IndexV1File) {
			t.Errorf("errors %v, want %q while the index is stored", run.errors, media.ErrFull)
		}
		sameHashes(t, "full key", bigBefore, hashes(t, big.Disks()))
		t.Logf("full key: %v", run.errors)
		noneComplete(t, key.Path)
	})

	t.Run("removed", func(t *testing.T) {
		key := passeurKey(t, r)
		key.WriteBps = 256 << 10 // a slow key: the backup lasts long enough to pull it out
		disks := append(a.Disks(), key)
		art := qemu.BuiltArtifacts(t, "qemu-x86_64")
		vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: disks, Monitor: true,
			Cmdline: "passeur.unattended=yes passeur.mode=backup"})
		for {
			ev, err := vm.WaitEvent("journal", bootTimeout/2)
			if err != nil {
				t.Fatal(err)
			}
			var rec journal.Record
			ev.Decode(&rec)
			if rec.Step == steps.Backup && rec.State == journal.StateBegun {
				break
			}
		}
		if out, err := vm.Monitor("device_del " + qemu.DiskID(len(disks)-1)); err != nil || strings.Contains(out, "rror") {
			t.Fatalf("device_del: %v %s", err, out)
		}
		if _, err := vm.WaitEvent("idle", 3*bootTimeout); err != nil {
			t.Fatal(err)
		}
		vm.Stop()
		run := collect(vm)
		if len(run.errors) == 0 || !strings.Contains(strings.Join(run.errors, "; "), media.ErrIO.Error()) || run.event("backup") != nil {
			t.Errorf("errors %v, want %q", run.errors, media.ErrIO)
		}
		t.Logf("key removed: %v", run.errors)
		noneComplete(t, key.Path)
	})
	sameHashes(t, "media failures", before, hashes(t, a.Disks()))

	t.Run("then a good key", func(t *testing.T) {
		key := passeurKey(t, r)
		run := rescue(t, append(a.Disks(), key), "passeur.mode=backup")
		if len(run.errors) > 0 || run.event("backup") == nil {
			t.Fatalf("errors %v", run.errors)
		}
		dir := checkNeverPartial(t, key.Path, "camrec-a")
		if !backup.IsComplete(dir) {
			t.Error("not complete")
		}
		fsckClean(t, key.Path)
	})
}

// noneComplete asserts no backup on the key is marked complete.
func noneComplete(t *testing.T, key string) {
	t.Helper()
	out, err := fixture.Run("", "mdir", "-/", "-b", "-i", key, "::/")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "/"+backup.CompleteFile) {
		t.Errorf("a backup is marked complete on the failed key:\n%s", out)
	}
}
