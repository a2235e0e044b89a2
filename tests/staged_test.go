package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
)

// TestStaged: a camrec 7 box of variant b (recordings on its system disk,
// on a GPT data disk labelled rec-b, and on a whole-disk xfs) stages
// camrec 8 from a repository served by a plain HTTP server on the host:
// passeur stage, the static binary a vendor copies on the box, runs with
// the box's root and its rec-b volume mounted, and leaves the staging
// area in passeur-staging/ on it. The rescue, booted with no key and only
// passeur.staged= on its command line, migrates from it: the new system
// reports what camrec 7 held, the xfs disk is unchanged, and of the rec-b
// volume only the staging image changed. The next rescue boot ends the
// run with the health report and empties the staging area of its release;
// the backup and the journal stay.
func TestStaged(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts the box's volumes as its running system would: needs root")
	}
	r := camrec8(t)
	repoDir := publish(t, r)
	addr := serveFolder(t, repoDir)

	a := v7(t, camrec.VariantB, camrec.Options{Seed: 29, FirstDataVolumeSize: 640 << 20})
	disks := a.Disks()
	var recB, xfs qemu.Disk
	for _, d := range disks {
		switch d.Serial {
		case "CAMREC-DATA1":
			recB = d
		case "CAMREC-DATA2":
			xfs = d
		}
	}
	xfsBefore := fileSHA(t, xfs.Path)

	// The box's running system: its root read-only, its rec-b volume
	// read-write, as its fstab mounts them.
	box := t.TempDir()
	sysRoot, volume := filepath.Join(box, "root"), filepath.Join(box, "rec-b")
	unmountRoot := mountPartition(t, a.System.Path, sysRoot, true, func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, "etc/camrec/version"))
		return err == nil
	})
	unmountVol := mountPartition(t, recB.Path, volume, false, func(string) bool { return true })
	passeur := filepath.Join(filepath.Dir(filepath.Dir(qemu.BuiltArtifacts(t, "qemu-x86_64").Kernel)), "bin/passeur")
	_, pub := signingKey(t)
	cmd := exec.Command(passeur, "stage", "-repo-root", filepath.Join(repoDir, "metadata/1.root.json"), "-trust", pub,
		"-repo", "http://"+addr, "-release", "stable", "-system", sysRoot, "-volume", volume)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("passeur stage: %v\n%s", err, out)
	}
	param := regexp.MustCompile(`passeur\.staged=(\S+)`).FindStringSubmatch(string(out))
	if param == nil || !strings.Contains(string(out), "staged camrec 8.0.0") {
		t.Fatalf("passeur stage said:\n%s", out)
	}
	t.Logf("passeur stage:\n%s", out)
	files := volumeFiles(t, volume)

	// A staged artifact altered after staging: refused at apply by name,
	// nothing written; put back, the staged release applies.
	fat := filepath.Join(volume, "passeur-staging", staging.ImageFile)
	artifact, good := "::/releases/camrec-8.0.0/root.img.zst", filepath.Join(box, "root.img.zst")
	mtools(t, "mcopy", "-n", "-i", fat, artifact, good)
	data, _ := os.ReadFile(good)
	data[len(data)/2] ^= 0x40
	bad := filepath.Join(box, "bad.zst")
	os.WriteFile(bad, data, 0o644)
	mtools(t, "mcopy", "-o", "-i", fat, bad, artifact)
	unmountVol()
	unmountRoot()
	before := hashes(t, disks)
	refused := rescue(t, disks, "passeur.mode=migrate passeur.staged="+param[1])
	var rel struct{ Dir, Error string }
	refused.decode(t, "release", &rel)
	if !strings.Contains(rel.Error, "artifact does not match the manifest") || refused.event("plan") != nil {
		t.Errorf("an altered staged artifact: release event %+v, plan %v: want it refused by name before any plan", rel, refused.event("plan") != nil)
	}
	after := hashes(t, disks)
	for serial := range before {
		if serial != recB.Serial && before[serial] != after[serial] {
			t.Errorf("a refused staged run changed disk %s", serial)
		}
	}
	unmountVol = mountPartition(t, recB.Path, volume, false, func(string) bool { return true })
	mtools(t, "mcopy", "-o", "-i", fat, good, artifact)
	unmountVol()

	// Power cuts: each boot takes up from the staging area's journal what
	// the one before left.
	cuts := sample(t, 2, stagedCuts)
	for _, c := range cuts {
		cutMigration(t, disks, c, "passeur.staged="+param[1])
		if fileSHA(t, xfs.Path) != xfsBefore {
			t.Fatalf("power cut at %s: the xfs data disk changed", c)
		}
	}

	m := migrate(t, disks, "passeur.staged="+param[1])
	if got := m.healthy(t); !reflect.DeepEqual(got, a.Expected) {
		t.Errorf("health report\n got %+v\nwant %+v", got, a.Expected)
	}
	var media struct{ Device, Staged, Volume string }
	m.decode(t, "media", &media)
	if media.Staged != param[1] || !strings.HasPrefix(media.Device, "/dev/loop") {
		t.Errorf("media event %+v: want the staging area %s on a loop device", media, param[1])
	}
	if fileSHA(t, xfs.Path) != xfsBefore {
		t.Error("the xfs data disk changed")
	}
	if now := volumeFilesOf(t, recB.Path); !reflect.DeepEqual(files, now) {
		t.Errorf("the rec-b volume's files changed beside the staging image:\nbefore %v\nafter  %v", files, now)
	}

	// The next rescue boot ends the run and empties the staging area.
	again := rescue(t, disks, "passeur.mode=migrate passeur.staged="+param[1])
	var outcome struct{ OK bool }
	again.decode(t, "outcome", &outcome)
	if !outcome.OK || len(again.errors) > 0 || again.event("staged_cleaned") == nil {
		t.Errorf("outcome %+v, errors %v: want OK and the staging area cleaned", outcome, again.errors)
	}
	// No fsck.vfat -n after power cuts: the image keeps the dirty bit of a
	// cut, as a key does.
	img := stagingImage(t, recB.Path, len(cuts) == 0)
	if names, err := img.Names(medialayout.ReleasesDir); err != nil || len(names) != 0 {
		t.Errorf("the staging area's releases after the run: %v %v", names, err)
	}
	if _, err := img.ReadFile(staging.StagedFile, 1<<20); err == nil {
		t.Error("the staging record stayed after the run")
	}
	hosts, _ := img.Names(medialayout.BackupDir)
	if len(hosts) != 1 {
		t.Fatalf("the staging area's backups: %v, want one host", hosts)
	}
	runs, _ := img.Names(medialayout.BackupDir + "/" + hosts[0])
	if len(runs) != 1 {
		t.Fatalf("runs %v, want one", runs)
	}
	jdata, err := img.ReadFile(medialayout.BackupDir+"/"+hosts[0]+"/"+runs[0]+"/"+journal.File, 16<<20)
	if err != nil || !strings.Contains(string(jdata), `"state":"`+journal.StateFinished+`"`) {
		t.Errorf("the run's journal in the staging area is not finished: %v", err)
	}
	if n := strings.Count(string(jdata), `"state":"`+journal.StateResumed+`"`); n != len(cuts)+1 {
		t.Errorf("the journal records %d resumptions, want %d (one per cut, one for the outcome)", n, len(cuts)+1)
	}
	if out, err := exec.Command("e2fsck", "-fn", partitionOf(t, recB.Path)).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on rec-b: %v\n%s", err, out)
	}
}

// serveFolder serves dir over plain HTTP on the host's loopback until the
// test ends, and gives its address.
func serveFolder(t *testing.T, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String()
}

// stagedCuts are the power cuts of a staged migration: in the backup, in
// each image write, before the table, before the first boot.
var stagedCuts = []migrationCut{
	{step: steps.Backup, state: journal.StateBegun},
	{step: steps.Backup, state: journal.StateDone},
	{step: steps.Write + "esp", state: journal.StateBegun},
	{step: steps.Write + "esp", state: "progress", fraction: 0.5},
	{step: steps.Write + "root", state: journal.StateBegun},
	{step: steps.Table, state: journal.StateBegun},
	{step: steps.Boot, state: journal.StateBegun},
}

// loopPartition attaches partition p of the disk image on a loop device
// (the host's kernel reads no partition table of a loop device), read-only
// when ro, and gives the device and its detach.
func loopPartition(t *testing.T, disk string, p extent, ro bool) (string, func()) {
	t.Helper()
	args := []string{"-f", "--show", "-o", fmt.Sprint(p.Start * 512), "--sizelimit", fmt.Sprint(p.Size * 512)}
	if ro {
		args = append(args, "-r")
	}
	out, err := exec.Command("losetup", append(args, disk)...).Output()
	if err != nil {
		t.Fatalf("losetup %s: %v", disk, err)
	}
	dev := strings.TrimSpace(string(out))
	var once sync.Once // the device's number is given again once it goes
	detach := func() { once.Do(func() { exec.Command("losetup", "-d", dev).Run() }) }
	t.Cleanup(detach)
	return dev, detach
}

// mountPartition mounts on dir the first partition of disk for which ok
// holds once mounted, and gives its unmount.
func mountPartition(t *testing.T, disk, dir string, ro bool, ok func(dir string) bool) func() {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	opts := "rw"
	if ro {
		opts = "ro,noload"
	}
	parts := partitions(t, disk)
	for _, p := range parts {
		dev, detach := loopPartition(t, disk, p, ro)
		if exec.Command("mount", "-o", opts, dev, dir).Run() == nil {
			if ok(dir) {
				var once sync.Once
				done := func() { once.Do(func() { exec.Command("umount", dir).Run(); detach() }) }
				t.Cleanup(done)
				return done
			}
			exec.Command("umount", dir).Run()
		}
		detach()
	}
	t.Fatalf("no partition of %s (%v) is the one looked for", disk, parts)
	return nil
}

// mtools runs an mtools command on the host.
func mtools(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// volumeFiles hashes every file of the mounted volume dir but the staging
// area's.
func volumeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && (rel == "passeur-staging" || rel == "lost+found") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		sums[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// volumeFilesOf is volumeFiles of the first partition of disk, mounted
// read-only.
func volumeFilesOf(t *testing.T, disk string) map[string]string {
	dir := t.TempDir()
	done := mountPartition(t, disk, dir, true, func(string) bool { return true })
	defer done()
	return volumeFiles(t, dir)
}

// stagingImage copies the staging image out of the first partition of
// disk, checks it with fsck.vfat -n when fsck, and opens it.
func stagingImage(t *testing.T, disk string, fsck bool) *staging.Image {
	t.Helper()
	dir, copyTo := t.TempDir(), filepath.Join(t.TempDir(), staging.ImageFile)
	done := mountPartition(t, disk, dir, true, func(string) bool { return true })
	data, err := os.ReadFile(filepath.Join(dir, "passeur-staging", staging.ImageFile))
	done()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(copyTo, data, 0o644)
	if fsck {
		fsckClean(t, copyTo)
	}
	img, err := staging.OpenImage(copyTo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// partitionOf gives the first partition of disk on a read-only loop
// device, detached at the test's end.
func partitionOf(t *testing.T, disk string) string {
	dev, _ := loopPartition(t, disk, partitions(t, disk)[0], true)
	return dev
}

// TestStagedReboot is the reboot path with nobody at the box: a camrec
// 8.0.0 box, booted under OVMF from its own disk, enrolled on its state
// partition (passeur/update.json naming the repository and the account,
// its trusted root, the vendor's key), runs passeur stage -apply reboot
// from its root as its update service would: the account's default
// 8.1.0 and the board's rescue image are staged on its recordings'
// volume from the repository (a plain HTTP server on the host, through
// restrict=on user networking), the rescue is loaded and the box reboots
// into it by kexec; the rescue migrates from the staging area and boots
// 8.1.0, which reports what 8.0.0 held. The recordings are unchanged.
func TestStagedReboot(t *testing.T) {
	rels := camrecVersions(t, "8.0.0", "8.1.0")
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	repoDir, keys := devRepo(t)
	editRepo(t, repoDir, keys, func(r *editor.Repo) error {
		if _, err := publishReleases(r, rels...); err != nil {
			return err
		}
		if err := r.PublishRescue("qemu-x86_64", filepath.Dir(art.Kernel)); err != nil {
			return err
		}
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.1.0", nil)
	})
	addr := serveFolder(t, repoDir)

	// The box: camrec 8.0.0 with the configuration and index of a v7
	// fixture restored, its recordings' volume reattached, enrolled.
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 31, FirstDataVolumeSize: 640 << 20})
	_, pub := signingKey(t)
	state := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(state, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg, idx bytes.Buffer
	camrec.WriteConfigV7(&cfg, a.Config)
	camrec.WriteIndexV1(&idx, a.Segments)
	write("restore"+camrec.ConfigV7File, cfg.Bytes())
	write("restore"+camrec.IndexV1File, idx.Bytes())
	v := a.Volumes[0]
	write("etc/fstab", []byte(fmt.Sprintf("UUID=%s %s %s defaults 0 0\n", v.UUID, v.Mountpoint, v.FSType)))
	// The box reports to a fleet server (on the host, reached as
	// 10.0.2.101) with the token of its enrolment.
	store, err := fleet.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, "box-31", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &http.Server{Handler: &fleet.Server{Store: store}}
	go fs.Serve(fl)
	t.Cleanup(func() { fs.Close() })
	write("passeur/update.json", []byte(`{"repo": "http://10.0.2.100", "account": "acme", "report": "http://10.0.2.101`+fleet.ReportPath+`", "box": "box-31", "report-token": "`+token+`"}`))
	root, _ := os.ReadFile(filepath.Join(repoDir, "metadata/1.root.json"))
	write("passeur/root.json", root)
	vendorPub, _ := os.ReadFile(pub)
	write("passeur/vendor.pub", vendorPub)
	sys := filepath.Join(t.TempDir(), "v8.img")
	installWithHostTools(t, rels[0], sys, 512<<20, state)
	data := a.Data[0]
	files := volumeFilesOf(t, data.Path)

	disks := []qemu.Disk{{Path: sys, Bus: qemu.VirtioBlk, Serial: "V8-SYS"}, data.Disk}
	vm := qemu.Test(t, qemu.Options{Board: art.Board, UEFI: true, Disks: disks, Net: true,
		GuestFwd: map[string]string{"10.0.2.100:80": addr, "10.0.2.101:80": fl.Addr().String()}})
	ev, err := vm.WaitMatch(6*bootTimeout, "camrec 8.1.0's health report", func(ev event.Event) bool {
		var h camrec.Report
		switch ev.Type {
		case "health":
			return ev.Decode(&h) == nil && h.Version == "8.1.0"
		case "update", "idle":
			var u struct{ OK bool }
			return ev.Decode(&u) == nil && !u.OK // a failed update, or the rescue with nothing to do
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	run := collect(vm)
	if ev.Type != "health" {
		t.Fatalf("the update stopped: %s (errors %v)", ev.Raw, run.errors)
	}
	var got camrec.Report
	ev.Decode(&got)
	want := a.Expected
	want.Version = "8.1.0"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("health report after the staged update\n got %+v\nwant %+v", got, want)
	}
	var before camrec.Report
	for _, e := range run.events {
		if e.Type == "health" && e.Decode(&before) == nil {
			break
		}
	}
	var update struct{ OK bool }
	run.decode(t, "update", &update)
	if before.Version != "8.0.0" || !update.OK {
		t.Errorf("the box did not run 8.0.0 (%+v), then update (%+v)", before, update)
	}
	// The fleet server heard the box stage 8.1.0, then its rescue apply it.
	hist, err := store.History("box-31")
	var states []string
	for _, r := range hist {
		states = append(states, r.State+" "+r.Version)
	}
	if err != nil || strings.Join(states, ", ") != "staged 8.1.0, applying 8.1.0" {
		t.Errorf("the fleet server's reports of box-31: %v (%v), want staged then applying 8.1.0", states, err)
	}
	var media struct{ Staged string }
	run.decode(t, "media", &media)
	if !strings.HasPrefix(media.Staged, v.UUID+"/") {
		t.Errorf("the rescue's media %+v: want the staging area on %s", media, v.UUID)
	}
	if !strings.Contains(vm.Console(), "booting the new system (kexec)") {
		t.Error("the rescue did not start 8.1.0 by kexec")
	}
	if now := volumeFilesOf(t, data.Path); !reflect.DeepEqual(files, now) {
		t.Errorf("the recordings' volume changed beside the staging area:\nbefore %v\nafter  %v", files, now)
	}
	if out, err := exec.Command("e2fsck", "-fn", partitionOf(t, data.Path)).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on the recordings' volume: %v\n%s", err, out)
	}
}
