package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/recovery"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// rescueRun is what one boot of the rescue image did.
type rescueRun struct {
	events []event.Event
	errors []string // "step: error" of each error event
}

func (r rescueRun) event(typ string) *event.Event {
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].Type == typ {
			return &r.events[i]
		}
	}
	return nil
}

// rescue boots the rescue image over disks with the given passeur keys,
// unattended, and waits until it has nothing more to do.
func rescue(t *testing.T, disks []qemu.Disk, cmdline string) rescueRun {
	t.Helper()
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: a.Initrd, Disks: disks, Cmdline: "passeur.unattended=yes " + cmdline})
	if _, err := vm.WaitEvent("idle", 3*bootTimeout); err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	return collect(vm)
}

// decode decodes the last event of type typ into v; the test fails if the
// run emitted none.
func (r rescueRun) decode(t *testing.T, typ string, v any) {
	t.Helper()
	ev := r.event(typ)
	if ev == nil {
		t.Fatalf("no %s event (errors: %v)", typ, r.errors)
	}
	if err := ev.Decode(v); err != nil {
		t.Fatal(err)
	}
}

func collect(vm *qemu.VM) rescueRun {
	var r rescueRun
	r.events = vm.Events()
	for _, ev := range r.events {
		if ev.Type == "error" {
			var e struct{ Step, Error string }
			ev.Decode(&e)
			r.errors = append(r.errors, e.Step+": "+e.Error)
		}
	}
	return r
}

// hashes returns the SHA-256 of each disk image.
func hashes(t *testing.T, disks []qemu.Disk) map[string]string {
	h := map[string]string{}
	for _, d := range disks {
		h[d.Serial] = fileSHA(t, d.Path)
	}
	return h
}

func sameHashes(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: disk %s changed", what, k)
		}
	}
}

// keyTree copies the key's Backup folder out with mtools and returns it.
func keyTree(t *testing.T, key string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := fixture.Run("", "mcopy", "-s", "-n", "-i", key, "::/"+medialayout.BackupDir, dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, medialayout.BackupDir)
}

// runDirs lists the run folders of host in an extracted Backup tree.
func runDirs(t *testing.T, tree, host string) []string {
	ents, _ := os.ReadDir(filepath.Join(tree, host))
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(tree, host, e.Name()))
	}
	return out
}

// fsckClean runs fsck.vfat -n on the key.
func fsckClean(t *testing.T, key string) {
	t.Helper()
	if out, err := exec.Command("fsck.vfat", "-n", key).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n on the key: %v\n%s", err, out)
	}
}

// sha256sumOK checks a backup folder with the host's sha256sum.
func sha256sumOK(dir string) error {
	cmd := exec.Command("sha256sum", "--strict", "--quiet", "-c", backup.SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sha256sum -c in %s: %v\n%s", dir, err, out)
	}
	return nil
}

func v7(t *testing.T, v camrec.Variant, o camrec.Options) *camrec.Appliance {
	t.Helper()
	if o.SegmentsPerCamera == 0 {
		o.SegmentsPerCamera = 10
	}
	a, err := camrec.BuildV7(t.TempDir(), v, o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func indexOf(segs []camrec.Segment) []byte {
	var b bytes.Buffer
	camrec.WriteIndexV1(&b, segs)
	return b.Bytes()
}

func configOf(c camrec.Config) []byte {
	var b bytes.Buffer
	camrec.WriteConfigV7(&b, c)
	return b.Bytes()
}

// partition copies a partition of a disk image out (at its offset, as
// sfdisk reads it) and returns the copy and a function putting it back.
func partition(t *testing.T, disk string, n int) (string, func()) {
	t.Helper()
	p := partitions(t, disk)[n-1]
	img := filepath.Join(t.TempDir(), "part.img")
	if _, err := fixture.Run("", "dd", "if="+disk, "of="+img, "bs=512", fmt.Sprintf("skip=%d", p.Start), fmt.Sprintf("count=%d", p.Size), "status=none"); err != nil {
		t.Fatal(err)
	}
	return img, func() {
		if _, err := fixture.Run("", "dd", "if="+img, "of="+disk, "bs=512", fmt.Sprintf("seek=%d", p.Start), "conv=notrunc", "status=none"); err != nil {
			t.Fatal(err)
		}
	}
}

// extent is a partition's place on its disk, in 512-byte sectors.
type extent struct{ Start, Size int64 }

// partitions lists the partitions of a disk image, as sfdisk reads them.
func partitions(t *testing.T, disk string) []extent {
	t.Helper()
	out, err := fixture.Run("", "sfdisk", "--json", disk)
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Partitions []extent `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(out), &pt); err != nil {
		t.Fatal(err)
	}
	return pt.PartitionTable.Partitions
}

// debugfs runs a debugfs request on an ext4 image.
func debugfs(t *testing.T, img string, request string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", request, img).Output()
	if err != nil {
		t.Fatalf("debugfs %s: %v", request, err)
	}
	return string(out)
}

// statLine keeps what restore must give back of a debugfs stat: type,
// mode, owner, size and modification time.
func statLine(s string) string {
	var keep []string
	for _, re := range []string{`Type: \S+\s+Mode:\s+\d+`, `User:\s+\d+\s+Group:\s+\d+`, `Size: \d+`, `mtime: [^\n]+`} {
		keep = append(keep, regexp.MustCompile(re).FindString(s))
	}
	return strings.Join(keep, " | ")
}

// TestBackupAndRestore: fixture (a) is backed up to the key, and the key
// checks on any PC (sha256sum -c, fsck.vfat -n); its configuration,
// deleted from the system disk, comes back from the key with its mode,
// owner and time; a tampered backup is refused by name with nothing
// written.
func TestBackupAndRestore(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 11})
	key := passeurKey(t, r)
	disks := append(a.Disks(), key)
	before := hashes(t, a.Disks())

	run := rescue(t, disks, "passeur.mode=backup")
	if len(run.errors) > 0 {
		t.Fatalf("errors: %v", run.errors)
	}
	var done struct {
		Dir     string
		Entries int
		Bytes   int64
	}
	run.decode(t, "backup", &done)
	sameHashes(t, "backup", before, hashes(t, a.Disks()))
	fsckClean(t, key.Path)

	tree := keyTree(t, key.Path)
	runs := runDirs(t, tree, "camrec-a")
	if len(runs) != 1 || !strings.HasSuffix(done.Dir, filepath.Base(runs[0])) {
		t.Fatalf("run folders %v, backup event %+v", runs, done)
	}
	dir := runs[0]
	if err := sha256sumOK(dir); err != nil {
		t.Fatal(err)
	}
	if !backup.IsComplete(dir) {
		t.Error("backup not marked complete")
	}
	for p, want := range map[string][]byte{
		"files/etc/camrec/camrec.conf":           configOf(a.Config),
		"files/var/lib/camrec/index/segments.v1": indexOf(a.Segments),
	} {
		if got, _ := os.ReadFile(filepath.Join(dir, p)); !bytes.Equal(got, want) {
			t.Errorf("%s on the key: %d bytes, want %d", p, len(got), len(want))
		}
	}
	for _, p := range []string{"files/etc/fstab", "passeur/plan.json", "console.log", journal.File} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("not on the key: %v", err)
		}
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "console.log")); !strings.Contains(string(log), "backup: ") || !strings.Contains(string(log), `"event":"ready"`) {
		t.Errorf("console log on the key lacks the run (%d bytes)", len(log))
	}
	recs, err := journal.Read(filepath.Join(dir, journal.File))
	if err != nil || recs[len(recs)-1].State != journal.StateFinished {
		t.Errorf("journal: %v, %d records", err, len(recs))
	}

	// The configuration is damaged on the system (other content, mode and
	// owner); restore brings it back as it was.
	const conf = "/etc/camrec/camrec.conf"
	root, put := partition(t, a.System.Path, 1)
	orig := statLine(debugfs(t, root, "stat "+conf))
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("[broken by a bad upgrade]\n"), 0o644)
	script := filepath.Join(t.TempDir(), "damage")
	os.WriteFile(script, []byte("rm "+conf+"\nwrite "+garbage+" "+conf+"\nsif "+conf+" uid 1000\nsif "+conf+" mode 0100600\n"), 0o644)
	if out, err := exec.Command("debugfs", "-w", "-f", script, root).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	if statLine(debugfs(t, root, "stat "+conf)) == orig {
		t.Fatal("the damage did not change the file")
	}
	put()
	before = hashes(t, a.Disks())
	run = rescue(t, disks, "passeur.mode=restore")
	if len(run.errors) > 0 || run.event("restore") == nil {
		t.Fatalf("restore: errors %v", run.errors)
	}
	root, _ = partition(t, a.System.Path, 1)
	if got := statLine(debugfs(t, root, "stat "+conf)); got != orig {
		t.Errorf("restored %s:\n got %s\nwant %s", conf, got, orig)
	}
	if got := debugfs(t, root, "cat "+conf); got != string(configOf(a.Config)) {
		t.Errorf("restored content %q", got)
	}
	if out, err := exec.Command("e2fsck", "-fn", root).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn after restore: %v\n%s", err, out)
	}
	sameHashes(t, "restore (data disks)", map[string]string{"CAMREC-DATA1": before["CAMREC-DATA1"]}, hashes(t, a.Disks()))

	// A byte changed on the key: the backup is refused, by file name,
	// and the system disk is not written (test-long: backup's host tests
	// and TestBadInputs refuse every kind of damage to a backup).
	if os.Getenv("PASSEUR_LONG") == "" {
		return
	}
	bad := filepath.Join(t.TempDir(), "camrec.conf")
	os.WriteFile(bad, bytes.Replace(configOf(a.Config), []byte("30"), []byte("31"), 1), 0o644)
	if _, err := fixture.Run("", "mcopy", "-o", "-i", key.Path, bad, "::/"+medialayout.BackupDir+"/camrec-a/"+filepath.Base(dir)+"/files/etc/camrec/camrec.conf"); err != nil {
		t.Fatal(err)
	}
	before = hashes(t, a.Disks())
	run = rescue(t, disks, "passeur.mode=restore")
	if len(run.errors) != 1 || !strings.Contains(run.errors[0], backup.ErrCorrupt.Error()) || !strings.Contains(run.errors[0], "files/etc/camrec/camrec.conf") {
		t.Errorf("tampered backup: errors %v", run.errors)
	}
	sameHashes(t, "refused restore", before, hashes(t, a.Disks()))
}

// TestEncryptedRecoverBackup: on fixture (b) (ext4 and xfs volumes, one
// on the system disk), recover mode rebuilds the index from the
// recordings, equal to the original, and the backup is encrypted to the
// age recipient named in the key's passeur/config.json (whose mode the
// command line overrides): the real age CLI decrypts it.
func TestEncryptedRecoverBackup(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantB, camrec.Options{Seed: 12})
	id, _ := age.GenerateX25519Identity()
	key := makeKey(t, r, 512<<20, 32, map[string]string{
		config.File: fmt.Sprintf(`{"mode": "backup", "age-recipient": %q}`, id.Recipient().String())})
	idFile := filepath.Join(t.TempDir(), "id.txt")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	before := hashes(t, a.Disks())

	run := rescue(t, append(a.Disks(), key), "passeur.mode=recover")
	if len(run.errors) > 0 {
		t.Fatalf("errors: %v", run.errors)
	}
	sameHashes(t, "recover", before, hashes(t, a.Disks()))
	var rep recovery.Report
	run.decode(t, "recovery", &rep)
	if rep.Existing != "equal" || rep.Segments != len(a.Segments) || rep.Cameras != 3 || rep.Volumes != 3 {
		t.Errorf("recovery report %+v", rep)
	}
	fsckClean(t, key.Path)
	runs := runDirs(t, keyTree(t, key.Path), "camrec-b")
	if len(runs) != 1 {
		t.Fatalf("runs %v", runs)
	}
	dir := runs[0]
	if err := sha256sumOK(dir); err != nil {
		t.Fatal(err)
	}
	decrypt := func(p string) []byte {
		out, err := exec.Command("age", "-d", "-i", idFile, filepath.Join(dir, p)).Output()
		if err != nil {
			t.Fatalf("age -d %s: %v", p, err)
		}
		return out
	}
	if got := decrypt("recovered/var/lib/camrec/index/segments.v1.age"); !bytes.Equal(got, indexOf(a.Segments)) {
		t.Errorf("rebuilt index (age -d) differs from the original")
	}
	if got := decrypt("files/etc/camrec/camrec.conf.age"); !bytes.Equal(got, configOf(a.Config)) {
		t.Errorf("config (age -d) differs")
	}
	var m backup.Manifest
	if err := json.Unmarshal(decrypt(backup.ManifestFile+".age"), &m); err != nil || len(m.Recipients) != 1 {
		t.Errorf("manifest: %v %+v", err, m.Recipients)
	}
	if _, err := os.Stat(filepath.Join(dir, "files/etc/camrec/camrec.conf")); err == nil {
		t.Error("plain configuration on the key of an encrypted backup")
	}

	// The technician puts the identity on the key and restores this
	// backup, by name, over a damaged configuration.
	const conf = "/etc/camrec/camrec.conf"
	root, put := partition(t, a.System.Path, 1)
	orig := statLine(debugfs(t, root, "stat "+conf))
	script := filepath.Join(t.TempDir(), "damage")
	os.WriteFile(script, []byte("sif "+conf+" mode 0100666\nsif "+conf+" uid 4242\n"), 0o644)
	if out, err := exec.Command("debugfs", "-w", "-f", script, root).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	put()
	if _, err := fixture.Run("", "mcopy", "-i", key.Path, idFile, "::/passeur/age-identities.txt"); err != nil {
		t.Fatal(err)
	}
	before = hashes(t, a.Disks())
	kept, _ := partition(t, a.System.Path, 2)
	keptSum := fileSHA(t, kept)
	run = rescue(t, append(a.Disks(), key), "passeur.mode=restore passeur.backup="+filepath.Base(dir))
	if len(run.errors) > 0 || run.event("restore") == nil {
		t.Fatalf("restore of the encrypted backup: %v", run.errors)
	}
	root, _ = partition(t, a.System.Path, 1)
	if got := statLine(debugfs(t, root, "stat "+conf)); got != orig {
		t.Errorf("restored %s:\n got %s\nwant %s", conf, got, orig)
	}
	if got := debugfs(t, root, "cat "+camrec.IndexV1File); got != string(indexOf(a.Segments)) {
		t.Error("restored index differs from the original")
	}
	if kept, _ := partition(t, a.System.Path, 2); fileSHA(t, kept) != keptSum {
		t.Error("restore wrote to the kept data partition of the system disk")
	}
	after := hashes(t, a.Disks())
	for _, d := range []string{"CAMREC-DATA1", "CAMREC-DATA2"} {
		if after[d] != before[d] {
			t.Errorf("restore wrote to data disk %s", d)
		}
	}
}

// TestBackupOfAnyVersion backs up fixture (c), camrec 7.12, which the key's
// camrec 8 refuses to migrate: a backup does not depend on the release, so
// it completes and verifies; it keeps no migration plan, and says why.
func TestBackupOfAnyVersion(t *testing.T) {
	r := camrec8(t)
	a := v7(t, camrec.VariantC, camrec.Options{Seed: 33})
	key := passeurKey(t, r)
	before := hashes(t, a.Disks())
	run := rescue(t, append(a.Disks(), key), "passeur.mode=backup")
	if len(run.errors) > 0 || run.event("backup") == nil {
		t.Fatalf("errors: %v", run.errors)
	}
	sameHashes(t, "backup of 7.12", before, hashes(t, a.Disks()))
	runs := runDirs(t, keyTree(t, key.Path), "camrec-c")
	if len(runs) != 1 || !backup.IsComplete(runs[0]) {
		t.Fatalf("run folders %v: want one, complete", runs)
	}
	if err := sha256sumOK(runs[0]); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(runs[0], "passeur/plan.json")); err == nil {
		t.Error("a migration plan was kept although camrec 8 cannot migrate 7.12")
	}
	log, _ := os.ReadFile(filepath.Join(runs[0], "console.log"))
	if !strings.Contains(string(log), "the backup keeps no migration plan: camrec 7.12") {
		t.Errorf("the console log does not say why no plan is kept")
	}
	fsckClean(t, key.Path)
}
