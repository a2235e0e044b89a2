package tests

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/passeur/passeur/initramfs/steps"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	v8 "github.com/passeur/passeur/qemu/camrec/v8"
	"github.com/passeur/passeur/qemu/fixture"
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
	// Nobody is at a staged box: the rescue goes back to the old system
	// (it reboots, and QEMU, told -no-reboot, exits).
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	vm := qemu.Test(t, qemu.Options{Board: art.Board, Kernel: art.Kernel, Initrd: art.Initrd, Disks: disks,
		Cmdline: "passeur.unattended=yes passeur.mode=migrate passeur.staged=" + param[1]})
	if err := vm.Wait(3 * bootTimeout); err != nil {
		t.Fatalf("the refused staged run did not go back to the old system: %v", err)
	}
	refused := collect(vm)
	var stopped struct{ Then string }
	if refused.decode(t, "staged_stopped", &stopped); stopped.Then != "boot" {
		t.Errorf("the refused staged run: %+v, want back to the old system", stopped)
	}
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
	cuts := sample(t, 1, stagedCuts)
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
	return serve(t, http.FileServer(http.Dir(dir)))
}

// serve serves h over plain HTTP on the host's loopback until the test
// ends, and gives its address.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
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

// stagedBox is a camrec 8.0.0 box enrolled for updates staged from its
// running system, its repository and its fleet server on the host.
type stagedBox struct {
	rels          []camrecRelease
	art           qemu.Artifacts
	repoDir, keys string
	a             *camrec.Appliance
	v             camrec.Volume
	store         *fleet.Store
	addr          string // the repository
	fleet         string // the fleet server
	sys           string
	data          fixture.Disk
	files         map[string]string // the recordings' volume, staging area aside
	box           string
	opts          qemu.Options // how the box boots
	backups       string       // where the fleet server keeps the boxes' backups
	repo          *heldRepo
	enrolment     map[string][]byte // on its state: update.json, root.json, vendor.pub
}

// heldRepo serves a repository's folder; armed, it sends half of the
// next file whose path ends as asked, tells so, and holds the connection
// until the box goes: a download the power cuts in the middle of.
type heldRepo struct {
	files  http.Handler
	mu     sync.Mutex
	suffix string
	held   chan struct{}
}

// hold arms r for the next request of a path ending in suffix, and gives
// the channel closed once half of it is sent.
func (r *heldRepo) hold(suffix string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suffix, r.held = suffix, make(chan struct{})
	return r.held
}

func (r *heldRepo) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	held := r.held
	if r.suffix == "" || !strings.HasSuffix(req.URL.Path, r.suffix) {
		held = nil
	}
	if held != nil {
		r.suffix, r.held = "", nil
	}
	r.mu.Unlock()
	if held == nil {
		r.files.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	r.files.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(rec.Code)
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	close(held)
	<-req.Context().Done()
}

// stagedWorld sets up, on the host, what a box enrolled for staged
// updates talks to: a repository publishing camrec 8.0.0, 8.1.0 and the
// board's rescue, whose account acme defaults to def, and a fleet server
// where box is enrolled. It returns the box's enrolment files
// (update.json, root.json, vendor.pub), by name.
func stagedWorld(t *testing.T, box, def string) (*stagedBox, map[string][]byte) {
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
		return r.SetDefault("acme", "camrec", def, nil)
	})
	held := &heldRepo{files: http.FileServer(http.Dir(repoDir))}
	addr := serve(t, held)
	// The box reports to a fleet server (on the host, reached as
	// 10.0.2.101) with the token of its enrolment.
	store, err := fleet.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, box, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	backups := t.TempDir()
	fleetAddr := serve(t, &fleet.Server{Store: store, Backups: backups})
	_, pub := signingKey(t)
	root, _ := os.ReadFile(filepath.Join(repoDir, "metadata/1.root.json"))
	vendorPub, _ := os.ReadFile(pub)
	enrolment := map[string][]byte{"update.json": updateJSON(box, token), "root.json": root, "vendor.pub": vendorPub}
	return &stagedBox{rels: rels, art: art, repoDir: repoDir, keys: keys, store: store, addr: addr, fleet: fleetAddr, box: box, backups: backups, repo: held}, enrolment
}

// updateJSON is the update configuration of box, enrolled with token:
// the repository and the fleet server as the box reaches them.
func updateJSON(box, token string) []byte {
	return []byte(`{"repo": "http://10.0.2.100", "account": "acme", "report": "http://10.0.2.101` + fleet.ReportPath + `", "box": "` + box + `", "report-token": "` + token + `"}`)
}

// lookAlike is another box of b's world, made from the same seed: the
// same recordings, the same volume UUIDs and disk serials, as a vendor's
// cloned boxes; only its enrolment (box, its own token) differs.
func (b *stagedBox) lookAlike(t *testing.T, seed int64, box string) *stagedBox {
	token, err := fleet.Enroll(b.store, box, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	c := &stagedBox{rels: b.rels, art: b.art, repoDir: b.repoDir, keys: b.keys, store: b.store, addr: b.addr, fleet: b.fleet, box: box, backups: b.backups, repo: b.repo}
	enrolment := maps.Clone(b.enrolment)
	enrolment["update.json"] = updateJSON(box, token)
	c.install(t, seed, enrolment, nil)
	return c
}

// newStagedBox makes a box of fixture a's seed: camrec 8.0.0 with the
// configuration and index of a v7 fixture restored, its recordings'
// volume reattached, enrolled (passeur/update.json, root.json,
// vendor.pub on its state) as box in account acme, whose default is def.
func newStagedBox(t *testing.T, seed int64, box, def string) *stagedBox {
	return newStagedBoxWith(t, seed, box, def, nil)
}

// newStagedBoxWith is newStagedBox with more files on the box's state
// partition (by path in it).
func newStagedBoxWith(t *testing.T, seed int64, box, def string, more map[string][]byte) *stagedBox {
	b, enrolment := stagedWorld(t, box, def)
	b.install(t, seed, enrolment, more)
	return b
}

// install makes b's disks: camrec 8.0.0 with the v7 fixture of seed
// restored, enrolment (and more) on its state.
func (b *stagedBox) install(t *testing.T, seed int64, enrolment, more map[string][]byte) {
	b.enrolment = enrolment
	a := v7(t, camrec.VariantA, camrec.Options{Seed: seed, FirstDataVolumeSize: 640 << 20})
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
	for name, data := range enrolment {
		write("passeur/"+name, data)
	}
	for rel, data := range more {
		write(rel, data)
	}
	b.sys = filepath.Join(t.TempDir(), "v8.img")
	installWithHostTools(t, b.rels[0], b.sys, 512<<20, state)
	b.a, b.v, b.data = a, v, a.Data[0]
	b.files = volumeFilesOf(t, b.data.Path)
	disks := []qemu.Disk{{Path: b.sys, Bus: qemu.VirtioBlk, Serial: "V8-SYS"}, b.data.Disk}
	// The box's firmware keeps its variables across power cuts.
	b.opts = qemu.Options{Board: b.art.Board, UEFI: true, Disks: disks, Vars: filepath.Join(t.TempDir(), "OVMF_VARS.fd")}
}

// vm starts the box (camrec 8 under OVMF from its own disk; camrec 7
// with the board's kernel), its repository and fleet server reached as
// 10.0.2.100 and 10.0.2.101.
func (b *stagedBox) vm(t *testing.T) *qemu.VM {
	o := b.opts
	o.Net, o.GuestFwd = true, map[string]string{"10.0.2.100:80": b.addr, "10.0.2.101:80": b.fleet}
	return qemu.Test(t, o)
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
// 8.1.0, which reports what 8.0.0 held, and settles the run (done
// reported, the staging area cleaned). The recordings are unchanged.
// Before that, the power is cut once (test-long: at each point in turn):
// halfway through the download of 8.1.0's root, or as the box hands off
// to the rescue; the next power-on finds 8.0.0 as it was, the update
// pending, and goes on (the download taken up, or the rescue's run
// handed over again).
func TestStagedReboot(t *testing.T) {
	b := newStagedBox(t, 31, "box-31", "8.1.0")
	// 8.0.0 writes its health report on its state partition at each
	// boot; the rest of its disk (table, esp, root) is what the rescue
	// would write.
	system := func() string {
		f, err := os.Open(b.sys)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, io.NewSectionReader(f, 0, 1<<20))
		for _, p := range partitions(t, b.sys)[:2] {
			io.Copy(h, io.NewSectionReader(f, p.Start*512, p.Size*512))
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	sysBefore := system()
	staged := 1 // reports of 8.1.0 staged: one per hand-off
	wrote := false
	for _, cut := range sample(t, 1, []string{"download", "hand-off", "writing"}) {
		var vm *qemu.VM
		switch cut {
		case "writing":
			// In the rescue, as it writes 8.1.0's root: the next power-on
			// finds systemd-boot's default entry set to the rescue the
			// run laid on the new ESP.
			vm = b.vm(t)
			if _, err := vm.WaitMatch(6*bootTimeout, "the write of the root", func(ev event.Event) bool {
				var rec journal.Record
				return ev.Type == "journal" && ev.Decode(&rec) == nil && rec.Step == steps.Write+"root" && rec.State == journal.StateBegun || ev.Type == "error"
			}); err != nil {
				t.Fatal(err)
			}
			vm.Stop()
			cutRun := collect(vm)
			var way struct {
				Armed bool
				Why   string
			}
			for _, ev := range cutRun.events {
				var rec journal.Record
				if ev.Type == "journal" && ev.Decode(&rec) == nil && rec.Step == steps.WayBack && rec.State == journal.StateDone {
					json.Unmarshal(rec.Detail, &way)
				}
			}
			if !way.Armed {
				t.Fatalf("the rescue did not lay its way back before writing the root: %+v (errors %v)", way, cutRun.errors)
			}
			wrote = true
			t.Logf("power cut as the rescue writes the root")
			continue
		case "download":
			held := b.repo.hold("root.img.zst")
			vm = b.vm(t)
			select {
			case <-held:
			case <-time.After(4 * bootTimeout):
				t.Fatal("the box did not download 8.1.0's root")
			}
		case "hand-off":
			vm = b.vm(t)
			if _, err := vm.WaitMatch(4*bootTimeout, "the hand-off", func(ev event.Event) bool {
				var u struct{ Staged bool }
				return ev.Type == "update" && ev.Decode(&u) == nil && u.Staged || ev.Type == "error"
			}); err != nil {
				t.Fatal(err)
			}
			staged++
		}
		vm.Stop()
		t.Logf("power cut at the %s", cut)
		if system() != sysBefore {
			t.Fatalf("power cut at the %s: the system disk's table, esp or root changed before the rescue ran", cut)
		}
	}
	vm := b.vm(t)
	run := b.settled(t, vm, 6*bootTimeout, strings.Repeat("staged 8.1.0, ", staged)+"applying 8.1.0, done 8.1.0")
	if wrote {
		// The firmware started the rescue (systemd-boot's default entry),
		// not 8.0.0: it took the run up (applying reported once, by the
		// run) and took itself off the ESP.
		old := false
		for _, e := range run.events {
			var h camrec.Report
			old = old || e.Type == "health" && e.Decode(&h) == nil && h.Version == "8.0.0"
		}
		c := vm.Console()
		if old || !strings.Contains(c, "way back to the rescue: still systemd-boot's default entry") || !strings.Contains(c, "way back to the rescue: taken off the new ESP") {
			t.Errorf("the power-on after the cut did not start the rescue (8.0.0 ran: %v), or it did not take itself off the new ESP", old)
		}
		b.noRescueOnESP(t)
	}
	var before camrec.Report
	for _, e := range run.events {
		if e.Type == "health" && e.Decode(&before) == nil {
			break
		}
	}
	var update struct{ OK bool }
	run.decode(t, "update", &update)
	if !wrote && (before.Version != "8.0.0" || !update.OK) {
		t.Errorf("the box did not run 8.0.0 (%+v), then update (%+v)", before, update)
	}
	var media struct{ Staged string }
	run.decode(t, "media", &media)
	if !strings.HasPrefix(media.Staged, b.v.UUID+"/") {
		t.Errorf("the rescue's media %+v: want the staging area on %s", media, b.v.UUID)
	}
	if !strings.Contains(vm.Console(), "booting the new system (kexec)") {
		t.Error("the rescue did not start 8.1.0 by kexec")
	}
	b.checkAfter(t)
}

// TestStagedLookAlike: two camrec 8.0.0 boxes made from the same seed
// (the same recordings, volume UUIDs and disk serials, as cloned boxes
// are), enrolled as two boxes of one account, stage 8.1.0 from one
// repository and report to one fleet server, one after the other: each
// ends on 8.1.0 with its own health, its own reports (staged, applying,
// done under its box) and its own backup on the fleet server, the
// first's left as it was by the second's run. test-long only (two more
// staged migrations).
func TestStagedLookAlike(t *testing.T) {
	longOnly(t, "two more staged migrations")
	b := newStagedBox(t, 41, "box-41a", "8.1.0")
	c := b.lookAlike(t, 41, "box-41b")
	if b.v.UUID != c.v.UUID || !reflect.DeepEqual(b.a.Expected, c.a.Expected) || !reflect.DeepEqual(b.files, c.files) {
		t.Fatalf("the look-alikes differ: volumes %s and %s", b.v.UUID, c.v.UUID)
	}
	for _, x := range []*stagedBox{b, c} {
		x.settled(t, x.vm(t), 6*bootTimeout, "staged 8.1.0, applying 8.1.0, done 8.1.0")
	}
	// The first box's reports and uploaded backup are its own still.
	b.checkAfter(t)
	c.checkAfter(t)
	hist, err := b.store.History(b.box)
	if err != nil || len(hist) != 3 {
		t.Errorf("%s's reports after %s's run: %d (%v), want its own 3", b.box, c.box, len(hist), err)
	}
}

// TestStagedShutdown is the shutdown path: a camrec 8.0.0 box whose
// account gives it 8.0.0 finds nothing to stage at boot; the account's
// default then moves to 8.1.0, and the box is powered off from its
// console ("poweroff"). Its shutdown path stages 8.1.0 and the rescue
// (passeur stage -apply poweroff: kexec in place of the power-off), the
// rescue migrates from the staging area and powers the box off; the next
// power-on boots 8.1.0 from the disk, which reports what 8.0.0 held and
// settles the staged run (done reported, the staging area cleaned).
// passeur stage also laid the rescue on the box's ESP (-esp) and set
// systemd-boot's one-shot entry to it first. One of three a day
// (test-long: all): that; or the power cut in the kexec'd rescue's
// backup, and the next power-on starts the rescue from the one-shot
// entry, which takes the run up and boots 8.1.0; or the box's kernel
// refuses kexec (camrec's no-kexec: kernel.kexec_load_disabled): passeur
// stage lays the rescue on the ESP and sets the one-shot entry only, the
// box powers off, and the next power-on starts the rescue from the
// firmware, which migrates and boots 8.1.0.
func TestStagedShutdown(t *testing.T) {
	for _, mode := range sample(t, 1, []string{"kexec", "cut in the backup", "one-shot entry"}) {
		t.Run(mode, func(t *testing.T) { stagedShutdown(t, mode) })
	}
}

func stagedShutdown(t *testing.T, mode string) {
	oneShot, cut := mode == "one-shot entry", mode == "cut in the backup"
	var more map[string][]byte
	if oneShot {
		more = map[string][]byte{v8.NoKexecFile: []byte("the vendor's kernel refuses kexec\n")}
	}
	b := newStagedBoxWith(t, 37, "box-37", "8.0.0", more)
	vm := b.vm(t)
	ev, err := vm.WaitEvent("update", 3*bootTimeout)
	var u struct {
		OK, Staged bool
		OneShot    bool `json:"one_shot"`
		Apply      string
	}
	if err != nil || ev.Decode(&u) != nil || !u.OK || u.Staged || u.Apply != "reboot" {
		t.Fatalf("8.0.0's update check at boot: %s %v, want nothing to stage", ev.Raw, err)
	}
	editRepo(t, b.repoDir, b.keys, func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	if err := vm.Type("poweroff\n"); err != nil {
		t.Fatal(err)
	}
	if cut {
		// The power goes as the kexec'd rescue backs the box up.
		if _, err := vm.WaitMatch(4*bootTimeout, "the rescue's backup", func(ev event.Event) bool {
			var rec journal.Record
			return ev.Type == "journal" && ev.Decode(&rec) == nil && rec.Step == steps.Backup && rec.State == journal.StateBegun || ev.Type == "error"
		}); err != nil {
			t.Fatal(err)
		}
		vm.Stop()
		t.Logf("power cut in the rescue's backup, at the box's power-off")
	} else if err := vm.Wait(4 * bootTimeout); err != nil {
		c := vm.Console()
		t.Fatalf("the box did not power off: %v\n%s", err, c[max(0, len(c)-3000):])
	}
	run := collect(vm)
	var updates []string
	for _, e := range run.events {
		if e.Type == "update" && e.Decode(&u) == nil {
			updates = append(updates, fmt.Sprintf("%s ok=%v staged=%v one-shot=%v", u.Apply, u.OK, u.Staged, u.OneShot))
		}
	}
	if want := fmt.Sprintf("reboot ok=true staged=false one-shot=false, poweroff ok=true staged=true one-shot=%v", oneShot); strings.Join(updates, ", ") != want {
		t.Errorf("the box's updates: %v, want nothing at boot then 8.1.0 staged at its power-off: %s", updates, want)
	}
	c := vm.Console()
	switch {
	case oneShot && (!strings.Contains(c, "the running kernel refuses kexec") || !strings.Contains(c, "loaded for the next boot (systemd-boot's one-shot entry)")):
		t.Fatalf("passeur stage did not hand off by the one-shot entry:\n%s", c[max(0, len(c)-3000):])
	case !oneShot && !strings.Contains(c, "systemd-boot's one-shot entry is set to the rescue on"):
		t.Fatalf("passeur stage did not set the one-shot entry first:\n%s", c[max(0, len(c)-3000):])
	}
	if oneShot || cut {
		// The box is off with the rescue on its ESP, systemd-boot's
		// one-shot entry set: the next power-on starts it (it migrates, or
		// takes the cut run up), and it boots 8.1.0.
		vm = b.vm(t)
		run = b.settled(t, vm, 6*bootTimeout, "staged 8.1.0, applying 8.1.0, done 8.1.0")
		for _, e := range run.events {
			var h camrec.Report
			if e.Type == "health" && e.Decode(&h) == nil && h.Version == "8.0.0" {
				t.Error("the power-on after the hand-off started 8.0.0, not the rescue")
			}
		}
		var media struct{ Staged string }
		run.decode(t, "media", &media)
		if !strings.HasPrefix(media.Staged, b.v.UUID+"/") {
			t.Errorf("the rescue's media %+v: want the staging area on %s", media, b.v.UUID)
		}
		if c := vm.Console(); !strings.Contains(c, "booting the new system (kexec)") || !strings.Contains(c, "way back to the rescue: taken off the new ESP") {
			t.Error("the rescue did not start 8.1.0 by kexec, its way back taken off the new ESP")
		}
		b.noRescueOnESP(t)
		b.checkAfter(t)
		return
	}
	var media struct{ Staged string }
	run.decode(t, "media", &media)
	if !strings.HasPrefix(media.Staged, b.v.UUID+"/") {
		t.Errorf("the rescue's media %+v: want the staging area on %s", media, b.v.UUID)
	}
	var boot struct{ How string }
	if run.decode(t, "boot", &boot); boot.How != "poweroff" || strings.Contains(vm.Console(), "booting the new system") {
		t.Errorf("the rescue's end: %+v, want it to power off", boot)
	}
	// The next power-on: 8.1.0 from the disk, no rescue left on its ESP
	// nor named by the firmware's one-shot entry.
	b.settled(t, b.vm(t), 3*bootTimeout, "staged 8.1.0, applying 8.1.0, done 8.1.0")
	b.noRescueOnESP(t)
	b.checkAfter(t)
}

// TestStagedLegacy is the legacy path: a camrec 7.14.0.3 box, booted
// with the board's kernel (the fixture has none of its own) and camrec
// 7's init, onto which its vendor copied passeur (a static binary, in
// /usr/local/bin), its board's name and the box's enrolment
// (/etc/passeur): at boot, its update service stages the account's
// default, 8.1.0, and the board's rescue on its recordings' volume and
// reboots into the rescue by kexec; the rescue migrates camrec 7 to 8.1.0
// from the staging area, its backup verified, and boots 8.1.0, which
// reports what camrec 7 held, takes the enrolment over from the restored
// /etc/passeur and settles the run (done reported, the staging area
// cleaned). The recordings are unchanged.
func TestStagedLegacy(t *testing.T) {
	b, enrolment := stagedWorld(t, "box-41", "8.1.0")
	dir := t.TempDir()
	build := func(name, pkg string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Dir, cmd.Env = repoRoot(t), append(os.Environ(), "CGO_ENABLED=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, o)
		}
		return out
	}
	put := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := map[string]string{
		"/usr/local/bin/passeur": build("passeur", "./cmds/passeur"),
		"/etc/camrec/board":      put("board", []byte("qemu-x86_64\n")),
		"/etc/resolv.conf":       put("resolv.conf", nil),
	}
	for name, data := range enrolment {
		files["/etc/passeur/"+name] = put(name, data)
	}
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 41, FirstDataVolumeSize: 640 << 20, Init: build("camrec7d", "./cmds/camrec7d"), Files: files})
	initrd := filepath.Join(dir, "initrd.zst")
	if _, err := fixture.Run("", "mcopy", "-i", extractArtifact(t, b.rels[0], "esp"), "::/camrec/initrd.zst", initrd); err != nil {
		t.Fatal(err)
	}
	out, err := fixture.Run("", "sfdisk", "--json", a.System.Path)
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct{ ID string } `json:"partitiontable"`
	}
	json.Unmarshal([]byte(out), &pt)
	b.a, b.v, b.data, b.sys = a, a.Volumes[0], a.Data[0], a.System.Path
	b.files = volumeFilesOf(t, b.data.Path)
	b.opts = qemu.Options{Board: b.art.Board, Kernel: b.art.Kernel, Initrd: initrd, Disks: a.Disks(),
		Cmdline: "root=PARTUUID=" + strings.TrimPrefix(pt.PartitionTable.ID, "0x") + "-01"}

	vm := b.vm(t)
	run := b.settled(t, vm, 8*bootTimeout, "staged 8.1.0, applying 8.1.0, done 8.1.0")
	var before camrec.Report
	for _, e := range run.events {
		if e.Type == "health" && e.Decode(&before) == nil {
			break
		}
	}
	var update struct{ OK, Staged bool }
	for _, e := range run.events {
		if e.Type == "update" && e.Decode(&update) == nil {
			break // the first: camrec 7's
		}
	}
	if before.Version != a.Version || !update.OK || !update.Staged {
		t.Errorf("the box did not run camrec %s (%+v), then stage (%+v)", a.Version, before, update)
	}
	if !strings.Contains(vm.Console(), "update enrolment restored from etc/passeur") {
		t.Error("camrec 8.1.0 did not take the enrolment over from camrec 7's /etc/passeur")
	}
	b.checkAfter(t)
}

// uploadedBefore tells whether a journal's upload was done before its
// first write began.
func uploadedBefore(recs []journal.Record) bool {
	for _, r := range recs {
		switch {
		case r.Step == steps.Upload && r.State == journal.StateDone:
			return true
		case steps.WritesSystem(r.Step):
			return false
		}
	}
	return false
}

// settled waits, on vm, for camrec 8.1.0's health report then its update
// check (passeur stage -health settles the staged run, and finds nothing
// more to stage), stops the VM, and checks the report is what the box
// held and the fleet server heard staged, applying and done 8.1.0.
func (b *stagedBox) settled(t *testing.T, vm *qemu.VM, timeout time.Duration, reports string) rescueRun {
	t.Helper()
	// The match sees every event again at each new one: it keeps no state.
	ev, err := vm.WaitMatch(timeout, "camrec 8.1.0's update check", func(ev event.Event) bool {
		var u struct{ OK, Staged bool }
		switch ev.Type {
		case "update":
			return ev.Decode(&u) == nil && (!u.OK || !u.Staged)
		case "idle":
			return ev.Decode(&u) == nil && !u.OK // the rescue with nothing to do
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	vm.Stop()
	run := collect(vm)
	var got camrec.Report
	for _, e := range run.events {
		var h camrec.Report
		if e.Type == "health" && e.Decode(&h) == nil && h.Version == "8.1.0" {
			got = h
		}
	}
	var last struct{ OK, Staged bool }
	if ev.Type != "update" || got.Version != "8.1.0" || ev.Decode(&last) != nil || !last.OK || last.Staged {
		t.Fatalf("the update stopped: %s (errors %v)", ev.Raw, run.errors)
	}
	want := b.a.Expected
	want.Version = "8.1.0"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("health report after the staged update\n got %+v\nwant %+v", got, want)
	}
	// The fleet server heard the box stage 8.1.0, its rescue apply it,
	// and 8.1.0 report done with its health.
	hist, err := b.store.History(b.box)
	var states []string
	for _, r := range hist {
		states = append(states, r.State+" "+r.Version)
	}
	if err != nil || strings.Join(states, ", ") != reports {
		t.Errorf("the fleet server's reports of %s: %v (%v), want %s", b.box, states, err, reports)
	}
	if len(hist) > 0 {
		var h camrec.Report
		if last := hist[len(hist)-1]; json.Unmarshal(last.Health, &h) != nil || !reflect.DeepEqual(h, want) {
			t.Errorf("the done report's health: %s, want %+v", last.Health, want)
		}
	}
	return run
}

// noRescueOnESP checks, once the box is off, that its new ESP holds
// nothing of the rescue (its entry, its kernel and initramfs): every file
// listed (mtools, the host's own), none of them passeur's.
func (b *stagedBox) noRescueOnESP(t *testing.T) {
	t.Helper()
	esp := partitions(t, b.sys)[0]
	out, err := fixture.Run("", "mdir", "-/", "-b", "-i", fmt.Sprintf("%s@@%d", b.sys, esp.Start*512), "::/")
	if err != nil || !strings.Contains(out, "loader.conf") || strings.Contains(strings.ToLower(out), "passeur") {
		t.Errorf("the new ESP after the run: %v\n%s", err, out)
	}
}

// checkAfter checks, once the box is off, that its recordings are
// unchanged and clean, and that its staging area is cleaned: the image
// and the rescue gone, the run's backup and finished journal kept.
func (b *stagedBox) checkAfter(t *testing.T) {
	t.Helper()
	data := b.data
	if now := volumeFilesOf(t, data.Path); !reflect.DeepEqual(b.files, now) {
		t.Errorf("the recordings' volume changed beside the staging area:\nbefore %v\nafter  %v", b.files, now)
	}
	if out, err := exec.Command("e2fsck", "-fn", partitionOf(t, data.Path)).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn on the recordings' volume: %v\n%s", err, out)
	}
	// The staging area is cleaned: the image and the rescue are gone, the
	// run's backup and its finished journal kept.
	dir := t.TempDir()
	done := mountPartition(t, data.Path, dir, true, func(string) bool { return true })
	defer done()
	area := filepath.Join(dir, "passeur-staging")
	var left []string
	filepath.WalkDir(area, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(area, p); err == nil && !d.IsDir() {
			left = append(left, rel)
		}
		return nil
	})
	journals, _ := filepath.Glob(filepath.Join(area, "runs", "*", "*", journal.File))
	if len(journals) != 1 {
		t.Fatalf("the staging area holds %v: want one kept run, no image, no rescue", left)
	}
	for _, f := range left {
		if !strings.HasPrefix(f, "runs/") {
			t.Errorf("the staging area still holds %s (all of it: %v)", f, left)
		}
	}
	recs, err := journal.Read(journals[0])
	if err != nil || recs[len(recs)-1].State != journal.StateFinished {
		t.Fatalf("the kept journal %s does not end finished: %v", journals[0], err)
	}
	if _, ok := journal.DoneIn(recs, steps.Verify); !ok {
		t.Errorf("the kept journal %s has no verified backup", journals[0])
	}
	// The fleet server keeps a copy of that backup, uploaded before the
	// first write: the same files as the kept run's.
	up, _ := journal.DoneIn(recs, steps.Upload)
	var upload struct{ Uploaded bool }
	if json.Unmarshal(up, &upload); !upload.Uploaded || !uploadedBefore(recs) {
		t.Errorf("the kept journal %s: upload %s, done before the first write: %v", journals[0], up, uploadedBefore(recs))
	}
	run := filepath.Dir(journals[0])
	f, err := os.Open(filepath.Join(b.backups, b.box, filepath.Base(run)+".tar"))
	if err != nil {
		t.Fatalf("the fleet server keeps no backup of the run: %v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	copied := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the uploaded backup: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		got, _ := io.ReadAll(tr)
		want, err := os.ReadFile(filepath.Join(run, filepath.FromSlash(h.Name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("the uploaded %s differs from the kept one (%v)", h.Name, err)
		}
		copied++
	}
	if copied < 3 {
		t.Errorf("the uploaded backup holds %d files", copied)
	}
}
