package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/camrec/v8"
	"github.com/passeur/passeur/qemu/fixture"
)

// TestHandMadeCamrec8 migrates a camrec 8.0.0 box passeur did not lay
// out: the vendor's own installer made its system disk with sfdisk
// (a small ESP, a squashfs root, an ext4 state labelled "state", each of
// its own size, the rest left free), mkfs.vfat, mksquashfs and mkfs.ext4
// -d. Its root's fstab mounts nothing; the state's, laid over it, mounts
// the recordings disk; the configuration and the v2 index are on the
// state only. The rescue reads the box through its state over its root,
// migrates it to camrec 8.1.0 from a key, and 8.1.0 reports the
// configuration, every recording, the index in v3, the recordings disk
// unchanged.
func TestHandMadeCamrec8(t *testing.T) {
	rels := camrecVersions(t, "8.1.0")
	a := v7(t, camrec.VariantA, camrec.Options{Seed: 53})
	dir := t.TempDir()
	vol := a.Volumes[0]

	root := filepath.Join(dir, "root")
	files := map[string]string{
		"etc/camrec/version": "camrec 8.0.0\n",
		"etc/hostname":       "nvr-8\n",
		"etc/os-release":     "NAME=camrec\nVERSION_ID=8.0.0\n",
		"etc/fstab":          "# the state's /etc/fstab, laid over this one, mounts the recordings\n",
	}
	state := filepath.Join(dir, "state")
	cfg, _ := json.Marshal(v8.Config{Site: a.Config.Site, RetentionDays: a.Config.RetentionDays, Cameras: a.Config.Cameras})
	var idx []v8.IndexEntry
	for _, s := range a.Segments {
		idx = append(idx, v8.IndexEntry{Camera: s.Camera, Start: s.Start, Path: s.Path, Size: s.Size})
	}
	index, _ := json.Marshal(idx)
	stateFiles := map[string]string{
		v8.ConfigFile: string(cfg),
		v8.IndexFile:  string(index),
		v8.FstabFile:  fmt.Sprintf("%s %s %s defaults,nofail 0 2\n", vol.FstabSpec, vol.Mountpoint, vol.FSType),
	}
	for tree, fs := range map[string]map[string]string{root: files, state: stateFiles} {
		for p, content := range fs {
			full := filepath.Join(tree, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, d := range []string{"sbin", "srv/recordings/d1", "var/lib/camrec", "proc", "sys", "dev", "run", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	esp, rootImg, stateImg := filepath.Join(dir, "esp.fs"), filepath.Join(dir, "root.fs"), filepath.Join(dir, "state.fs")
	if err := fixture.Blank(esp, 32<<20); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"mkfs.vfat", "-n", "EFI", esp},
		{"mksquashfs", root, rootImg, "-noappend", "-all-root", "-quiet", "-no-progress"},
	} {
		if _, err := fixture.Run("", cmd[0], cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := fixture.Blank(stateImg, 96<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := fixture.Run("", "mkfs.ext4", "-q", "-F", "-L", "state", "-E", "root_owner=0:0", "-d", state, stateImg); err != nil {
		t.Fatal(err)
	}
	sys := filepath.Join(dir, "system.img")
	if err := fixture.Blank(sys, 512<<20); err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\n" +
		"start=2048, size=65536, type=U, name=EFI\n" +
		"start=67584, size=81920, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=camrec-root\n" +
		"start=149504, size=196608, type=L, name=camrec-state\n"
	if _, err := fixture.Run(script, "sfdisk", "-q", "--no-reread", "--no-tell-kernel", sys); err != nil {
		t.Fatal(err)
	}
	for img, at := range map[string]int{esp: 1, rootImg: 33, stateImg: 73} {
		if _, err := fixture.Run("", "dd", "if="+img, "of="+sys, "bs=1M", fmt.Sprintf("seek=%d", at), "conv=notrunc", "status=none"); err != nil {
			t.Fatal(err)
		}
	}
	disks := append([]qemu.Disk{{Path: sys, Bus: qemu.VirtioBlk, Serial: "NVR8-SYS"}}, fixtureData(a)...)
	data := fixtureData(a)
	before := hashes(t, data)

	key := filepath.Join(t.TempDir(), "key.img")
	onKey := map[string]string{}
	names, _ := filepath.Glob(filepath.Join(rels[0].dir, "*"))
	for _, n := range names {
		onKey["releases/camrec-8.1.0/"+filepath.Base(n)] = n
	}
	if err := fixture.Key(key, 512<<20, 32, onKey, map[string]string{medialayout.Marker: `{"format":1}`}); err != nil {
		t.Fatal(err)
	}
	m := migrate(t, append(disks, qemu.Disk{Path: key, Bus: qemu.USB, Serial: "PASSEUR-KEY"}), "")
	var plan struct{ Backup struct{ From string } }
	m.decode(t, "plan", &plan)
	if plan.Backup.From != "/dev/vda3 over /dev/vda2" {
		t.Errorf("the plan backs up from %q, want the state /dev/vda3 over the root /dev/vda2", plan.Backup.From)
	}
	want := a.Expected
	want.Version = "8.1.0"
	if got := m.healthy(t); !reflect.DeepEqual(got, want) {
		t.Errorf("health report of 8.1.0\n got %+v\nwant %+v", got, want)
	}
	var h struct {
		IndexFormat int `json:"index_format"`
	}
	m.decode(t, "health", &h)
	if h.IndexFormat != 3 {
		t.Errorf("8.1.0's index format %d, want 3", h.IndexFormat)
	}
	if !strings.Contains(m.console, "camrec 8.0.0") {
		t.Error("the console never names the installed camrec 8.0.0")
	}
	sameHashes(t, "migration of a hand-made camrec 8", before, hashes(t, data))
}
