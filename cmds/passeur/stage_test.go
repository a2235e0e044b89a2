package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"golang.org/x/sys/unix"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/obtain"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/passeur/passeur/initramfs/steps"
)

// camrecRoot is the root of a running camrec of version ver, as passeur
// stage reads its version.
func camrecRoot(t *testing.T, ver string) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc/camrec"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/camrec/version"), []byte("camrec "+ver+"\n"), 0o644)
	return dir
}

// TestStage: on a running camrec 8.0.0 of account acme, whose default is
// 8.2.0 behind a barrier at 8.1.0, passeur stage brings 8.2.0, 8.1.0
// passed through, verified, into the staging area, and records it; with
// 8.1.0 to be booted once, it brings 8.1.0. A staging area without room
// is refused before any release byte is written; a box on its version
// stages nothing; a default older than the box is refused but where the
// account allows downgrades.
func TestStage(t *testing.T) {
	v := repotest.New(t)
	v.Publish("8.0.0", "8.1.0", "8.2.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.Barrier = true }); err != nil {
			return err
		}
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.2.0", nil)
	})
	system := func(ver string) string { return camrecRoot(t, ver) }
	opts := func(sys string, free int64) stageOptions {
		vol := staging.Volume{Point: t.TempDir(), Dev: "/dev/vdb1", Disk: "vdb", Label: "rec-a", UUID: "0a1b2c3d-0000-4000-8000-000000000001", Type: "ext4"}
		return stageOptions{system: sys, root: v.Root, trusted: []minisign.PublicKey{v.PK}, repo: v.Srv.URL, work: t.TempDir(),
			box: obtain.Box{Account: "acme"}, fetch: fetch.Options{Attempts: 1},
			volumes:  func(*release.Manifest, string) ([]staging.Volume, error) { return []staging.Volume{vol}, nil },
			free:     func(string) (int64, error) { return free, nil },
			identity: func() string { return "box-1" }, now: func() time.Time { return v.Now }}
	}
	// look opens the staging image of o, as the rescue reads it.
	look := func(o stageOptions) *staging.Image {
		vols, _ := o.volumes(nil, "")
		img, err := staging.OpenImage(filepath.Join(vols[0].Point, "passeur-staging", staging.ImageFile))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { img.Close() })
		return img
	}

	o := opts(system("8.0.0"), 1<<40)
	s, err := stage(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "8.2.0" || s.From != "8.0.0" || strings.Join(s.Through, " ") != "8.1.0" || s.Release != "releases/camrec-8.2.0" ||
		s.Param != "0a1b2c3d-0000-4000-8000-000000000001/passeur-staging" {
		t.Errorf("staged %+v: want 8.2.0 from 8.0.0 through 8.1.0", s)
	}
	img := look(o)
	manifest, err := img.ReadFile(s.Release+"/manifest.json", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(manifest); hex.EncodeToString(sum[:]) != s.ManifestSHA256 {
		t.Errorf("the record's manifest hash %s is not the staged manifest's", s.ManifestSHA256)
	}
	var onDisk staging.Record
	if data, err := img.ReadFile(staging.StagedFile, 1<<20); err != nil || json.Unmarshal(data, &onDisk) != nil || onDisk.ManifestSHA256 != s.ManifestSHA256 {
		t.Errorf("the record on disk: %v %+v", err, onDisk)
	}
	root, _ := img.ReadFile(s.Release+"/root.img.zst", 1<<30)
	if len(root) == 0 {
		t.Error("the release's artifact was not brought")
	}
	if names, _ := img.Names("releases"); strings.Join(names, " ") != "camrec-8.2.0" {
		t.Errorf("the staging area's releases: %v, want camrec-8.2.0 only", names)
	}
	for _, p := range []string{"passeur/repository/metadata/timestamp.json", medialayout.Marker} {
		if _, err := img.ReadFile(p, 1<<20); err != nil {
			t.Errorf("the staging image lacks %s: %v", p, err)
		}
	}
	// Its blocks are reserved: the rescue's writes cannot fill the volume.
	vols, _ := o.volumes(nil, "")
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(vols[0].Point, "passeur-staging", staging.ImageFile), &st); err != nil || st.Blocks*512 < st.Size {
		t.Errorf("the staging image is sparse: %d of %d bytes allocated (%v)", st.Blocks*512, st.Size, err)
	}
	if work, _ := os.ReadDir(o.work); len(work) != 0 {
		t.Errorf("stage left its work behind: %v", work)
	}
	// Staged again before anything applied it (the power went at the
	// hand-off): the image without runs goes first, its room counted; the
	// volume has no room for a second one beside it.
	staged := filepath.Join(vols[0].Point, "passeur-staging", staging.ImageFile)
	before, _ := os.Stat(staged)
	o.free = func(string) (int64, error) { return before.Size(), nil }
	if again, err := stage(context.Background(), o); err != nil || again.Version != "8.2.0" {
		t.Errorf("staging again over an image with no run, room for one image: %+v %v", again, err)
	}
	if left, _ := filepath.Glob(filepath.Join(vols[0].Point, "passeur-staging", "media-*.fat")); len(left) != 0 {
		t.Errorf("an image with no run was kept aside: %v", left)
	}

	// With its board, the box brings the rescue image the repository
	// publishes for it beside the staging image; a board without one is
	// refused before anything is written.
	rescue := t.TempDir()
	for _, name := range repo.RescueFiles {
		os.WriteFile(filepath.Join(rescue, name), []byte("the "+name+" of qemu-x86_64\n"), 0o644)
	}
	v.Edit(func(r *editor.Repo) error { return r.PublishRescue("qemu-x86_64", rescue) })
	o = opts(system("8.0.0"), 1<<40)
	o.board = "qemu-x86_64"
	if s, err = stage(context.Background(), o); err != nil || s.Rescue == nil || s.Rescue.Board != "qemu-x86_64" {
		t.Fatalf("staged with a board: %+v %v", s, err)
	}
	vols, _ = o.volumes(nil, "")
	for _, name := range repo.RescueFiles {
		got, _ := os.ReadFile(filepath.Join(vols[0].Point, "passeur-staging", staging.RescueDir, name))
		sum := sha256.Sum256(got)
		if string(got) != "the "+name+" of qemu-x86_64\n" || s.Rescue.SHA256[name] != hex.EncodeToString(sum[:]) {
			t.Errorf("the rescue's %s beside the staging image: %q, recorded %s", name, got, s.Rescue.SHA256[name])
		}
	}
	// The hand-off loads what the repository signed, with the command
	// line that applies the staging area; a rescue file changed since is
	// refused and nothing is loaded.
	folder := filepath.Join(vols[0].Point, "passeur-staging")
	var loaded []string
	load := func(kernel, initrd *os.File, cmdline string) error {
		k, _ := io.ReadAll(kernel)
		i, _ := io.ReadAll(initrd)
		loaded = []string{string(k), string(i), cmdline}
		return nil
	}
	if _, err := handOff(s, folder, config.Config{}, config.ThenBoot, load); err != nil || len(loaded) != 3 ||
		loaded[0] != "the vmlinuz of qemu-x86_64\n" || loaded[1] != "the initramfs.cpio.zst of qemu-x86_64\n" ||
		!strings.HasPrefix(loaded[2], "console=ttyS0,115200") || !strings.Contains(loaded[2], " passeur.mode=migrate passeur.unattended=yes passeur.staged="+s.Param) {
		t.Errorf("hand-off: %v, loaded %q", err, loaded)
	}
	// At shutdown: the rescue is told to power off once it has written.
	if _, err := handOff(s, folder, config.Config{}, config.ThenPoweroff, load); err != nil || !strings.HasSuffix(loaded[2], " passeur.staged="+s.Param+" passeur.then=poweroff") {
		t.Errorf("hand-off at shutdown: %v, %q", err, loaded)
	}
	// The box's fleet server goes on the command line, one word a key; a
	// value that would add a word is refused, nothing loaded.
	reporting := config.Config{Report: "http://10.0.2.100/fleet/report", Box: "box-7", ReportToken: "s3cret"}
	if _, err := handOff(s, folder, reporting, config.ThenBoot, load); err != nil || !strings.HasSuffix(loaded[2], " passeur.net=dhcp passeur.report=http://10.0.2.100/fleet/report passeur.box=box-7 passeur.report-token=s3cret") {
		t.Errorf("hand-off of a reporting box: %v, %q", err, loaded)
	}
	if r := redact(loaded[2]); strings.Contains(r, "s3cret") || !strings.Contains(r, "passeur.report-token=…") {
		t.Errorf("the command line as printed: %q", r)
	}
	for _, bad := range []config.Config{
		{Report: "http://10.0.2.100/fleet/report", Box: "box-7 init=/bin/sh", ReportToken: "t"},
		{Report: "http://10.0.2.100/ passeur.format-data=vdb", Box: "box-7", ReportToken: "t"},
		{Report: "http://10.0.2.100/fleet/report", Box: "box-7", ReportToken: "t\tpasseur.target=vda"},
		{Report: "file:///etc/passwd", Box: "box-7", ReportToken: "t"},
	} {
		loaded = nil
		if _, err := handOff(s, folder, bad, config.ThenBoot, load); !errors.Is(err, ErrNoHandOff) || loaded != nil || strings.Contains(fmt.Sprint(err), "\tpasseur") {
			t.Errorf("hand-off with %+v: %v, loaded %q", bad, err, loaded)
		}
	}
	// A kernel that refuses kexec: the rescue goes on the ESP with an
	// entry, systemd-boot's one-shot entry set to it; taken off again.
	esp, vars := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(esp, "loader/entries"), 0o755)
	os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ #### LoaderInfo: systemd-boot 252.39-1~deb12u2 ####"), 0o644)
	os.WriteFile(filepath.Join(vars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0, 1, 0}, 0o644)
	defer func(f func() (efivar.Vars, error)) { firmwareVars = f }(firmwareVars)
	firmwareVars = func() (efivar.Vars, error) { return efivar.Vars{Dir: vars}, nil }
	refused := func(err error) error { return fmt.Errorf("%w: %w", ErrNoHandOff, loadError{err}) }
	if !kexecRefused(refused(unix.EPERM)) || kexecRefused(refused(unix.ENOEXEC)) || kexecRefused(fmt.Errorf("%w: %w", ErrNoHandOff, unix.EPERM)) {
		t.Error("kexecRefused: EPERM from the load is a refusal; ENOEXEC (a kernel it cannot load), or EPERM before the load, is not")
	}
	if _, err := handOff(s, folder, reporting, config.ThenBoot, func(*os.File, *os.File, string) error { return unix.EPERM }); !kexecRefused(err) {
		t.Errorf("a load refused with EPERM: %v, not a kexec refusal", err)
	}
	cmdline, err := handOff(s, folder, reporting, config.ThenBoot, entryLoad(esp))
	entry, _ := os.ReadFile(filepath.Join(esp, "loader/entries", newsys.RescueEntry))
	kernel, _ := os.ReadFile(filepath.Join(esp, newsys.RescueFolder, "vmlinuz"))
	oneShot, _ := efivar.Vars{Dir: vars}.OneShotEntry()
	if err != nil || !strings.Contains(string(entry), "options "+cmdline+"\n") || string(kernel) != "the vmlinuz of qemu-x86_64\n" || oneShot != newsys.RescueEntry {
		t.Errorf("hand-off by the one-shot entry: %v, entry %q, kernel %q, one-shot %q", err, entry, kernel, oneShot)
	}
	if err := entryUnload(esp); err != nil {
		t.Fatal(err)
	}
	oneShot, _ = efivar.Vars{Dir: vars}.OneShotEntry()
	if _, err := os.Stat(filepath.Join(esp, newsys.RescueFolder)); oneShot != "" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after entryUnload: one-shot %q, %s: %v", oneShot, newsys.RescueFolder, err)
	}
	// The one-shot variable cannot be set: nothing stays on the ESP.
	os.Mkdir(filepath.Join(vars, efivar.OneShot), 0o755)
	if _, err := handOff(s, folder, reporting, config.ThenBoot, entryLoad(esp)); !errors.Is(err, ErrNoHandOff) {
		t.Errorf("hand-off by an entry whose variable cannot be set: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(esp, "loader/entries")); len(ents) != 0 {
		t.Errorf("a failed entry hand-off left %v", ents)
	}
	os.Remove(filepath.Join(vars, efivar.OneShot))
	// An ESP whose loader is not systemd-boot: nothing laid, nothing set.
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ GRUB"), 0o644)
	if _, err := handOff(s, folder, reporting, config.ThenBoot, entryLoad(esp)); !errors.Is(err, ErrNoHandOff) {
		t.Errorf("hand-off by the entry of a GRUB ESP: %v", err)
	}
	if oneShot, _ = (efivar.Vars{Dir: vars}).OneShotEntry(); oneShot != "" {
		t.Errorf("one-shot entry %q set for a GRUB ESP", oneShot)
	}

	loaded = nil
	os.WriteFile(filepath.Join(folder, staging.RescueDir, "vmlinuz"), []byte("another kernel\n"), 0o644)
	if _, err := handOff(s, folder, config.Config{}, config.ThenBoot, load); !errors.Is(err, ErrNoHandOff) || loaded != nil {
		t.Errorf("hand-off of a changed kernel: %v, loaded %q", err, loaded)
	}

	o = opts(system("8.0.0"), 1<<40)
	o.board = "rpi4"
	if _, err := stage(context.Background(), o); !errors.Is(err, ErrNoRescue) {
		t.Errorf("a board without a rescue image: %v, want ErrNoRescue", err)
	}
	if vols, _ := o.volumes(nil, ""); true {
		if entries, _ := os.ReadDir(vols[0].Point); len(entries) != 0 {
			t.Errorf("a refused stage wrote %v", entries)
		}
	}

	// A staging folder that is a link (whoever writes the volume's root
	// made it) is refused: root writes nothing through it.
	o = opts(system("8.0.0"), 1<<40)
	vols, _ = o.volumes(nil, "")
	elsewhere := t.TempDir()
	os.Symlink(elsewhere, filepath.Join(vols[0].Point, "passeur-staging"))
	if _, err := stage(context.Background(), o); !errors.Is(err, ErrUnsafeFolder) {
		t.Errorf("the staging folder a link: %v, want ErrUnsafeFolder", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("stage wrote %v through the link", entries)
	}

	// earlier lays, on a fresh volume of o, a staging image holding a run
	// whose journal mark writes, and rec as its record when set; it
	// returns the staging folder.
	earlier := func(o stageOptions, mark func(j *journal.Journal), rec *staging.Record) string {
		vols, _ := o.volumes(nil, "")
		dir := filepath.Join(vols[0].Point, "passeur-staging")
		old := t.TempDir()
		j, err := journal.Create(filepath.Join(old, "Backup/box-1/2026-11-30T080000Z", journal.File), journal.Header{Mode: "migrate", Machine: "m", Host: "box-1"})
		if err != nil {
			t.Fatal(err)
		}
		mark(j)
		j.Close()
		if rec != nil {
			data, _ := json.Marshal(rec)
			os.MkdirAll(filepath.Join(old, "passeur"), 0o755)
			os.WriteFile(filepath.Join(old, staging.StagedFile), data, 0o644)
		}
		os.MkdirAll(dir, 0o755)
		if err := staging.Make(filepath.Join(dir, staging.ImageFile), staging.MinImage, old, v.Now); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	// Staging again: an image holding a run not finished is refused; one
	// whose runs are over is kept aside, its backups with it.
	for _, finished := range []bool{false, true} {
		o = opts(system("8.0.0"), 1<<40)
		dir := earlier(o, func(j *journal.Journal) {
			if finished {
				j.Finish(map[string]bool{"ok": true})
			}
		}, nil)
		_, err = stage(context.Background(), o)
		kept, _ := filepath.Glob(filepath.Join(dir, "media-*.fat"))
		switch {
		case !finished && !errors.Is(err, ErrRunStaged):
			t.Errorf("an image with a run to take up: %v, want ErrRunStaged", err)
		case !finished && len(kept) != 0:
			t.Errorf("a refused stage moved the image: %v", kept)
		case finished && (err != nil || len(kept) != 1):
			t.Errorf("an image whose run is over: %v, kept %v; want it kept aside", err, kept)
		case finished:
			if done, open, err := staging.Runs(kept[0]); done != 1 || open != 0 || err != nil {
				t.Errorf("the image kept aside holds %d finished, %d open runs (%v)", done, open, err)
			}
		}
	}

	// A run to take up in an image staged here: stage gives its record
	// back, checked, for the rescue to be handed the run again (the
	// rescue's hashes the repository's, not the image's); not once the run
	// booted the new system (its outcome is settle's) or failed a step,
	// nor when the record's manifest hash is not the staged manifest's
	// (how often it was handed off is bounded below, outside the image).
	for _, c := range []struct {
		name string
		mark func(j *journal.Journal)
		bad  bool // the record altered
		want bool
	}{
		{"planned", func(j *journal.Journal) { j.Complete(steps.Plan, nil) }, false, true},
		{"booted", func(j *journal.Journal) { j.Complete(steps.Boot, map[string]string{"how": "kexec"}) }, false, false},
		{"failed", func(j *journal.Journal) { j.Fail(steps.Backup, errors.New("no room")) }, false, false},
		{"record altered", func(j *journal.Journal) { j.Complete(steps.Plan, nil) }, true, false},
	} {
		o = opts(system("8.0.0"), 1<<40)
		o.board = "qemu-x86_64"
		first, err := stage(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		vols, _ = o.volumes(nil, "")
		img := filepath.Join(vols[0].Point, "passeur-staging", staging.ImageFile)
		layRun(t, img, v.Now, func(run string, j *journal.Journal) {
			c.mark(j)
			if c.bad {
				rec := *first
				rec.ManifestSHA256 = strings.Repeat("0", 64)
				rec.Rescue = &staging.Rescue{Board: "qemu-x86_64", SHA256: map[string]string{"vmlinuz": strings.Repeat("1", 64)}}
				data, _ := json.Marshal(rec)
				os.WriteFile(filepath.Join(run, "../../..", staging.StagedFile), data, 0o644)
			}
		})
		s, err := stage(context.Background(), o)
		switch {
		case !errors.Is(err, ErrRunStaged):
			t.Errorf("%s: %v, want ErrRunStaged", c.name, err)
		case c.want && (s == nil || s.Version != "8.2.0" || s.Volume.Point != vols[0].Point || s.Rescue == nil || s.Rescue.SHA256["vmlinuz"] != first.Rescue.SHA256["vmlinuz"]):
			t.Errorf("%s: the record %+v, want 8.2.0's on %s with the signed rescue", c.name, s, vols[0].Point)
		case !c.want && s != nil:
			t.Errorf("%s: the record %+v given for a hand-off", c.name, s)
		}
	}

	// Two volumes: the one with the most room, until one holds a staging
	// image; then that one, whatever the other's room.
	o = opts(system("8.0.0"), 1<<40)
	a := staging.Volume{Point: t.TempDir(), Dev: "/dev/vdb1", Disk: "vdb", Label: "rec-a", UUID: "0a1b2c3d-0000-4000-8000-00000000000a", Type: "ext4"}
	b := staging.Volume{Point: t.TempDir(), Dev: "/dev/vdc1", Disk: "vdc", Label: "rec-b", UUID: "0a1b2c3d-0000-4000-8000-00000000000b", Type: "ext4"}
	o.volumes = func(*release.Manifest, string) ([]staging.Volume, error) { return []staging.Volume{a, b}, nil }
	roomy := a.Point
	o.free = func(p string) (int64, error) { return map[bool]int64{true: 1 << 40, false: 1 << 39}[p == roomy], nil }
	if s, err := stage(context.Background(), o); err != nil || s.Volume.Point != a.Point {
		t.Errorf("two volumes, a the roomier: %+v %v", s, err)
	}
	roomy = b.Point
	if s, err := stage(context.Background(), o); err != nil || s.Volume.Point != a.Point {
		t.Errorf("two volumes, b now the roomier, a holding the image: %+v %v, want a", s, err)
	}

	// Handed to the rescue 3 times already, and back on the old system: a
	// stage that would hand it off again refuses, writing nothing; another
	// release, or no hand-off asked, stages.
	o = opts(system("8.0.0"), 1<<40)
	o.apply = true
	vols, _ = o.volumes(nil, "")
	area := filepath.Join(vols[0].Point, "passeur-staging")
	os.MkdirAll(area, 0o755)
	for i := 0; i < maxHandOffs; i++ {
		if err := countHandOff(area, "camrec-8.2.0"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stage(context.Background(), o); !errors.Is(err, ErrHandedOff) {
		t.Errorf("handed off %d times: %v, want ErrHandedOff", maxHandOffs, err)
	}
	if entries, _ := os.ReadDir(area); len(entries) != 1 {
		t.Errorf("a refused stage wrote in the staging folder: %v", entries)
	}
	o.apply = false
	if _, err := stage(context.Background(), o); err != nil {
		t.Errorf("staged without a hand-off: %v", err)
	}
	if n := handOffs(area, "camrec-8.3.0"); n != 0 {
		t.Errorf("another release counts %d hand-offs", n)
	}

	// An unfinished run of 8.1.0 handed off 3 times, the account's default
	// moved on to 8.2.0 since: the run's own release's count bounds it.
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	o = opts(system("8.0.0"), 1<<40)
	o.board = "qemu-x86_64"
	if s, err := stage(context.Background(), o); err != nil || s.Version != "8.1.0" {
		t.Fatalf("staged %+v %v, want 8.1.0", s, err)
	}
	vols, _ = o.volumes(nil, "")
	area = filepath.Join(vols[0].Point, "passeur-staging")
	layRun(t, filepath.Join(area, staging.ImageFile), v.Now, func(run string, j *journal.Journal) { j.Complete(steps.Plan, nil) })
	for range maxHandOffs {
		if err := countHandOff(area, "camrec-8.1.0"); err != nil {
			t.Fatal(err)
		}
	}
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.2.0", nil) })
	o.apply = true
	if s, err := stage(context.Background(), o); !errors.Is(err, ErrHandedOff) || s != nil {
		t.Errorf("8.1.0's run handed off %d times, the route now to 8.2.0: %+v %v, want ErrHandedOff", maxHandOffs, s, err)
	}
	o.apply = false
	if s, err := stage(context.Background(), o); !errors.Is(err, ErrRunStaged) || s == nil || s.Version != "8.1.0" {
		t.Errorf("no hand-off asked: %+v %v, want 8.1.0's run to take up", s, err)
	}

	// No room: refused by name, nothing written on the volume.
	o = opts(system("8.0.0"), 1<<20)
	if _, err := stage(context.Background(), o); !errors.Is(err, ErrNoRoom) {
		t.Errorf("1 MiB free: %v, want ErrNoRoom", err)
	}
	if vols, _ := o.volumes(nil, ""); true {
		if entries, _ := os.ReadDir(vols[0].Point); len(entries) != 0 {
			t.Errorf("a refused stage wrote %v", entries)
		}
	}

	// On its version: nothing to stage.
	o = opts(system("8.2.0"), 1<<40)
	if _, err := stage(context.Background(), o); !errors.Is(err, obtain.ErrUpToDate) {
		t.Errorf("on 8.2.0: %v, want ErrUpToDate", err)
	}

	// The account's default moved back to 8.1.0: a box on 8.2.0 stays,
	// unless the account allows downgrades.
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.1.0", nil) })
	o = opts(system("8.2.0"), 1<<40)
	if _, err := stage(context.Background(), o); !errors.Is(err, obtain.ErrUpToDate) {
		t.Errorf("a default older than the box: %v, want ErrUpToDate", err)
	}
	if vols, _ := o.volumes(nil, ""); true {
		if entries, _ := os.ReadDir(vols[0].Point); len(entries) != 0 {
			t.Errorf("a refused downgrade wrote %v", entries)
		}
	}
	v.Edit(func(r *editor.Repo) error {
		return r.ChangeAccount("acme", "camrec", func(a *repo.Account) error { a.AllowDowngrade = true; return nil })
	})
	if s, err := stage(context.Background(), opts(system("8.2.0"), 1<<40)); err != nil || s.Version != "8.1.0" {
		t.Errorf("a downgrade the account allows: %+v %v, want 8.1.0 staged", s, err)
	}
	v.Edit(func(r *editor.Repo) error { return r.SetDefault("acme", "camrec", "8.2.0", nil) })

	// 8.1.0 must boot once: the box stages 8.1.0.
	v.Edit(func(r *editor.Repo) error {
		return r.SetRelease("camrec", "8.1.0", func(p *repo.Release) { p.BootOnce = true })
	})
	if s, err := stage(context.Background(), opts(system("8.0.0"), 1<<40)); err != nil || s.Version != "8.1.0" || len(s.Through) != 0 {
		t.Errorf("8.1.0 boot-once: %+v, %v; want 8.1.0", s, err)
	}
}

// TestStageCommand: passeur stage, run with its flags and the box's
// configuration file, finds the data volume the release declares among the
// mounts (an ext4 labelled rec-stage, made by mkfs.ext4 and mounted), and
// refuses a folder that is not such a volume by name. It reports the box
// staged to the fleet server its configuration names, with the box's token.
func TestStageCommand(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a filesystem: needs root")
	}
	v := repotest.New(t)
	v.Publish("8.0.0", "8.2.0")
	v.Edit(func(r *editor.Repo) error { return r.AddAccount("acme") })
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol")
	os.MkdirAll(vol, 0o755)
	sys := filepath.Join(dir, "sys")
	os.MkdirAll(filepath.Join(sys, "etc/camrec"), 0o755)
	os.WriteFile(filepath.Join(sys, "etc/camrec/version"), []byte("camrec 8.0.0\n"), 0o644)
	for _, c := range [][]string{
		{"mkfs.ext4", "-q", "-L", "rec-stage", filepath.Join(dir, "vol.img"), "512M"},
		{"mount", "-o", "loop", filepath.Join(dir, "vol.img"), vol},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("umount", vol).Run() })
	store, err := fleet.Open(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, "box-7", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	fs := httptest.NewServer(&fleet.Server{Store: store})
	defer fs.Close()
	for name, data := range map[string][]byte{"root.json": v.Root, "vendor.pub": []byte(pubKey(t, v.PK)),
		"config.json": []byte(`{"repo": "` + v.Srv.URL + `", "account": "acme", "report": "` + fs.URL + fleet.ReportPath + `", "box": "box-7", "report-token": "` + token + `"}`)} {
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	args := func(volume string) []string {
		return []string{"stage", "-volume", volume, "-repo-root", filepath.Join(dir, "root.json"),
			"-trust", filepath.Join(dir, "vendor.pub"), "-config", filepath.Join(dir, "config.json"), "-system", sys, "-release", "8.2.0"}
	}
	var out, errOut bytes.Buffer
	if err := run(args(dir), &out, &errOut); !errors.Is(err, staging.ErrNoPlace) {
		t.Errorf("a folder that is no data volume: %v, want ErrNoPlace", err)
	}
	if err := run(args(vol), &out, &errOut); err != nil || !strings.Contains(out.String(), "staged camrec 8.2.0 (passeur.release=8.2.0) from 8.0.0") ||
		!strings.Contains(out.String(), "passeur.staged=") {
		t.Errorf("passeur stage: %v\n%s%s", err, out.String(), errOut.String())
	}
	if st, err := os.Stat(filepath.Join(vol, "passeur-staging", staging.ImageFile)); err != nil || st.Size() < staging.MinImage {
		t.Errorf("the staging image on the volume: %v", err)
	}
	if b, err := store.Box("box-7"); err != nil || b.Last == nil || b.Last.State != wire.StateStaged || b.Last.Version != "8.2.0" {
		t.Errorf("the fleet server's last report of box-7: %+v %v; want 8.2.0 staged", b.Last, err)
	}
}

func pubKey(t *testing.T, pk minisign.PublicKey) string {
	t.Helper()
	text, err := pk.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(text) + "\n"
}
