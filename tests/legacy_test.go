package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// regionSHA is the SHA-256 of n bytes of img at off.
func regionSHA(t *testing.T, img string, off, n int64) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestLegacyDisks migrates system disks laid out the way installers leave
// them (sfdisk's MBR: root, swap, then the recordings partition with a
// label of its own, mounted by UUID), with a disk of another machine whose
// ext4 carries a data label beside them:
//   - recordings ending 1 MiB before the disk's end: the new table is a
//     GPT, the recordings partition kept (a new PARTUUID: an MBR one cannot
//     be held by a GPT), the stray disk a candidate only;
//   - recordings to the last sector: no room for a backup GPT, so the
//     release's MBR fallback, the new ESP's boot entry naming the MBR's
//     PARTUUIDs;
//
// each booted by kexec and then under OVMF from its own disk, reporting
// what camrec 7 held, recordings and data disks byte for byte unchanged.
// A GPT whose data partition is in the way of the new layout is refused at
// preflight with every disk unchanged.
func TestLegacyDisks(t *testing.T) {
	r := camrec8(t)
	for _, tc := range sample(t, 1, []struct {
		name      string
		toEnd     bool
		wantTable string
	}{{"mbr-data-short-of-the-end", false, "gpt"}, {"mbr-data-to-the-last-sector", true, "dos"}}) {
		t.Run(tc.name, func(t *testing.T) {
			a := v7(t, camrec.VariantD, camrec.Options{Seed: 41, DataToEnd: tc.toEnd})
			stray := qemu.Disk{Path: filepath.Join(t.TempDir(), "stray.img"), Bus: qemu.VirtioBlk, Serial: "OLD-BOX"}
			if err := fixture.Mkfs(stray.Path, "ext4", "rec-stray", 64<<20); err != nil {
				t.Fatal(err)
			}
			others := append(fixtureData(a), stray)
			before := hashes(t, others)
			const dataAt = (1 + 180 + 48) << 20 // variant D's recordings partition
			dataSize := int64(512<<20) - dataAt
			if !tc.toEnd {
				dataSize -= 1 << 20
			}
			keptSum := regionSHA(t, a.System.Path, dataAt, dataSize)
			key := passeurKey(t, r)

			m := migrate(t, append(a.Disks(), stray, key), "")
			var plan struct {
				Table      string
				Partitions []struct{ Name, Action, From string }
				Candidates []struct{ Device, Label string }
			}
			m.decode(t, "plan", &plan)
			if plan.Table != tc.wantTable {
				t.Errorf("plan table %q, want %q", plan.Table, tc.wantTable)
			}
			kept := ""
			for _, p := range plan.Partitions {
				if p.Action == "keep" {
					kept += p.Name + " " + p.From
				}
			}
			if kept != "data /dev/vda3" {
				t.Errorf("kept %q, want the recordings partition data /dev/vda3", kept)
			}
			if len(plan.Candidates) != 1 || plan.Candidates[0].Label != "rec-stray" {
				t.Errorf("candidates %+v, want the stray disk", plan.Candidates)
			}
			if got := m.healthy(t); !reflect.DeepEqual(got, a.Expected) {
				t.Errorf("health report after kexec\n got %+v\nwant %+v", got, a.Expected)
			}
			got := map[string]string{}
			for _, ev := range m.events {
				var rec struct{ Step, State string }
				if ev.Type == "journal" && ev.Decode(&rec) == nil {
					got[rec.Step] = rec.State
				}
			}
			if entry := got[steps.Entry]; (tc.wantTable == "dos") != (entry == journal.StateDone) {
				t.Errorf("boot entry step %q with a %s table", entry, tc.wantTable)
			}
			if regionSHA(t, a.System.Path, dataAt, dataSize) != keptSum {
				t.Error("the recordings partition's bytes changed")
			}
			sameHashes(t, "migration", before, hashes(t, others))
			out, err := fixture.Run("", "sfdisk", "--json", a.System.Path)
			if err != nil || !strings.Contains(out, `"label": "`+tc.wantTable+`"`) {
				t.Errorf("sfdisk reads the new table as: %v\n%s", err, out)
			}
			if got := bootV8(t, append(a.Disks(), stray)); !reflect.DeepEqual(got, a.Expected) {
				t.Errorf("health report under OVMF\n got %+v\nwant %+v", got, a.Expected)
			}
			sameHashes(t, "camrec 8's boot", before, hashes(t, others))
		})
	}
	t.Run("gpt-data-in-the-way", func(t *testing.T) {
		a := v7(t, camrec.VariantE, camrec.Options{Seed: 43})
		before := hashes(t, a.Disks())
		m := migrate(t, append(a.Disks(), passeurKey(t, r)), "")
		sameHashes(t, "refused migration", before, hashes(t, a.Disks()))
		said := strings.Join(m.errors, "\n")
		for _, w := range []string{"preflight failed", "target layout", "fits in no free space of the disk", "around the kept partitions"} {
			if !strings.Contains(said, w) {
				t.Errorf("the run does not say %q:\n%s", w, said)
			}
		}
		if m.health != nil || m.event("journal") != nil {
			t.Error("the refused migration began")
		}
	})
}
