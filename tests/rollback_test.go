package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// bootV7 boots the old system from its disk, as its boot loader would:
// the board's kernel with an initrd that mounts root=PARTUUID=… (camrec
// 8's), then its own /sbin/init (camrec7d), and returns its health report.
func bootV7(t *testing.T, a *camrec.Appliance, initrd string) camrec.Report {
	t.Helper()
	out, err := fixture.Run("", "sfdisk", "--json", a.System.Path)
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct{ ID string } `json:"partitiontable"`
	}
	json.Unmarshal([]byte(out), &pt)
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: initrd, Disks: a.Disks(),
		Cmdline: "root=PARTUUID=" + strings.TrimPrefix(pt.PartitionTable.ID, "0x") + "-01"})
	got := reportOf(t, vm, 2*bootTimeout)
	vm.Stop()
	return got
}

// TestRollback migrates a camrec 7 whose index lists a recording its
// volumes no longer hold: the migration saves what it will overwrite on
// the key first, camrec 8 then fails its health check (one segment
// missing), the next rescue boot records that and offers the rollback.
// passeur.mode=rollback is cut by a power loss after its second piece;
// the next boot takes it up and finishes it: the whole system disk is
// byte for byte what camrec 7 left, the data disk never changed, and
// camrec 7 boots again and reports what it reported before.
func TestRollback(t *testing.T) {
	r := camrec8(t)
	init := filepath.Join(t.TempDir(), "camrec7d")
	build := exec.Command("go", "build", "-o", init, "./cmds/camrec7d")
	build.Dir, build.Env = repoRoot(t), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build camrec7d: %v\n%s", err, out)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.zst")
	if _, err := fixture.Run("", "mcopy", "-i", extractArtifact(t, r, "esp"), "::/camrec/initrd.zst", initrd); err != nil {
		t.Fatal(err)
	}
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 45, Index: camrec.IndexPhantom, Init: init})
	v7Before := bootV7(t, a, initrd)
	if v7Before.Version != a.Version || v7Before.SegmentsMissing != 1 || v7Before.SegmentsIndexed != len(a.Segments)+1 {
		t.Fatalf("camrec 7 before the migration reports %+v", v7Before)
	}
	key := makeKey(t, r, 1<<30, 32) // room for the backup and the save
	disks := append(a.Disks(), key)
	sysBefore := fileSHA(t, a.System.Path)
	dataBefore := hashes(t, fixtureData(a))

	m := migrate(t, disks, "")
	var saved struct {
		Step, State string
		Detail      struct {
			Available bool
			Bytes     int64
			Pieces    int
		}
	}
	for _, ev := range m.events {
		var rec journal.Record
		if ev.Type == "journal" && ev.Decode(&rec) == nil && rec.Step == steps.Save && rec.State == journal.StateDone {
			ev.Decode(&saved)
		}
	}
	if !saved.Detail.Available || saved.Detail.Pieces < 3 {
		t.Fatalf("the migration saved no rollback: %+v", saved)
	}
	if m.health == nil || m.health.OK || m.health.SegmentsMissing != 1 {
		t.Fatalf("camrec 8's health %+v, want one segment missing", m.health)
	}
	if fileSHA(t, a.System.Path) == sysBefore {
		t.Fatal("the migration did not write the system disk")
	}

	again := rescue(t, disks, "passeur.mode=migrate")
	var out struct {
		OK       bool
		Rollback bool
		Message  string
	}
	again.decode(t, "outcome", &out)
	if out.OK || !out.Rollback || !strings.Contains(out.Message, "passeur.mode=rollback") {
		t.Errorf("outcome %+v: the failed check does not offer the rollback", out)
	}

	// The power is cut while the rollback writes its third piece.
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: disks,
		Cmdline: "passeur.unattended=yes passeur.mode=rollback"})
	ev, err := vm.WaitMatch(3*bootTimeout, "rollback 1 done", func(ev event.Event) bool {
		var rec journal.Record
		return ev.Type == "journal" && ev.Decode(&rec) == nil && rec.Step == steps.Piece+"1" || ev.Type == "error" || ev.Type == "idle"
	})
	if err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	if ev.Type != "journal" {
		t.Fatalf("the rollback stopped before its second piece: %s", ev.Raw)
	}
	if fileSHA(t, a.System.Path) == sysBefore {
		t.Fatal("the cut rollback was already complete: no cut tested")
	}

	done := rescue(t, disks, "passeur.mode=rollback")
	var rb struct {
		OK   bool
		From string
	}
	done.decode(t, "rollback", &rb)
	if !rb.OK || len(done.errors) > 0 {
		t.Fatalf("rollback %+v, errors %v", rb, done.errors)
	}
	resumed := 0
	for _, ev := range done.events {
		var rec journal.Record
		if ev.Type == "journal" && ev.Decode(&rec) == nil && strings.HasPrefix(rec.Step, steps.Piece) && rec.State == journal.StateDone {
			resumed++
		}
	}
	if resumed >= saved.Detail.Pieces || resumed == 0 {
		t.Errorf("the second boot wrote %d of %d pieces: the cut rollback was not taken up", resumed, saved.Detail.Pieces)
	}
	if got := fileSHA(t, a.System.Path); got != sysBefore {
		t.Errorf("the system disk after the rollback is not camrec 7's: %s, was %s", got, sysBefore)
	}
	sameHashes(t, "migration and rollback", dataBefore, hashes(t, fixtureData(a)))

	// Nothing more to roll back: a third boot says so and writes nothing.
	third := rescue(t, disks, "passeur.mode=rollback")
	if said := strings.Join(third.errors, "\n"); !strings.Contains(said, "already rolled back") {
		t.Errorf("a second rollback: %s", said)
	}
	if fileSHA(t, a.System.Path) != sysBefore {
		t.Error("the third boot changed the system disk")
	}
	if got := bootV7(t, a, initrd); !reflect.DeepEqual(got, v7Before) {
		t.Errorf("camrec 7 after the rollback reports\n %+v\nbefore the migration it reported\n %+v", got, v7Before)
	}
}
