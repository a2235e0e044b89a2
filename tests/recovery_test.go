package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/recovery"
	"github.com/passeur/passeur/qemu/camrec"
)

// TestIndexRecoveredInBackup: with the v1 index deleted, truncated or with
// a flipped byte, the backup finds it out, rebuilds the index from the
// recordings (read-only: the data disk is unchanged), equal to what the
// index held, reports the files that are not recordings, and keeps a
// damaged index beside the rebuilt one.
func TestIndexRecoveredInBackup(t *testing.T) {
	r := camrec8(t)
	for _, damage := range sample(t, 1, []camrec.IndexDamage{camrec.IndexMissing, camrec.IndexFlipped, camrec.IndexTruncated}) {
		t.Run(string(damage), func(t *testing.T) {
			a := v7(t, camrec.VariantA, camrec.Options{Seed: 13, Index: damage, Strays: true})
			key := passeurKey(t, r)
			before := hashes(t, a.Disks())
			run := rescue(t, append(a.Disks(), key), "passeur.mode=backup")
			if len(run.errors) > 0 {
				t.Fatalf("errors: %v", run.errors)
			}
			sameHashes(t, "backup with recovery", before, hashes(t, a.Disks()))
			var rep recovery.Report
			run.decode(t, "recovery", &rep)
			wantExisting := "missing"
			if damage != camrec.IndexMissing {
				wantExisting = "corrupt: "
			}
			if !strings.HasPrefix(rep.Existing, wantExisting) || rep.Segments != len(a.Segments) || rep.Cameras != 3 {
				t.Errorf("report %+v", rep)
			}
			var rejected []string
			for _, x := range rep.Rejected {
				rejected = append(rejected, strings.TrimPrefix(x.Path, a.Volumes[0].Mountpoint+"/"))
			}
			if !slices.Equal(rejected, camrec.StrayFiles) {
				t.Errorf("rejected %v, want %v", rejected, camrec.StrayFiles)
			}
			dir := runDirs(t, keyTree(t, key.Path), "camrec-a")[0]
			if err := sha256sumOK(dir); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, "recovered", camrec.IndexV1File))
			if !bytes.Equal(got, indexOf(a.Segments)) {
				t.Errorf("rebuilt index on the key: %d bytes, want the original's %d", len(got), len(indexOf(a.Segments)))
			}
			m, err := backup.Load(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			origins := map[string]bool{}
			for _, e := range m.Entries {
				if e.Path == camrec.IndexV1File {
					origins[e.Origin] = true
				}
			}
			want := map[string]bool{backup.OriginRecovered: true}
			if damage != camrec.IndexMissing {
				want[backup.OriginDamaged] = true
			}
			if b1, _ := json.Marshal(origins); string(b1) != func() string { b2, _ := json.Marshal(want); return string(b2) }() {
				t.Errorf("index entries %v, want %v", origins, want)
			}
		})
	}
}
