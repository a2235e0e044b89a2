package tests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/passeur/passeur/qemu/fixture"
)

// camrecRelease is camrec 8 built from its spec, once per run, signed with
// the key the rescue image trusts (build.sh's PASSEUR_KEY).
type camrecRelease struct {
	dir, pub string
	m        *release.Manifest
	err      error
}

var (
	relOnce sync.Once
	rel     camrecRelease
)

func repoRoot(t *testing.T) string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

func buildCamrec(t *testing.T, out string) (*release.Manifest, error) {
	keyFile, _ := signingKey(t)
	return camrec.BuildV8(repoRoot(t), filepath.Join(repoRoot(t), ".cache"), out, keyFile, io.Discard)
}

// signingKey is the private key releases are signed with and its public
// half, which the built rescue image trusts: $PASSEUR_KEY (build.sh sets
// it) or the development key in .cache/keys.
func signingKey(t *testing.T) (key, pub string) {
	t.Helper()
	key = os.Getenv("PASSEUR_KEY")
	if key == "" {
		key = filepath.Join(repoRoot(t), ".cache/keys/dev.key")
	}
	pub = strings.TrimSuffix(key, ".key") + ".pub"
	if _, err := os.Stat(key); err != nil {
		if os.Getenv("PASSEUR_REQUIRE_VM") != "" {
			t.Fatalf("signing key: %v", err)
		}
		t.Skipf("signing key: %v (run ./build.sh first)", err)
	}
	return key, pub
}

func camrec8(t *testing.T) camrecRelease {
	t.Helper()
	qemu.BuiltArtifacts(t, "qemu-x86_64") // needs the kernel build.sh fetched
	_, pub := signingKey(t)
	relOnce.Do(func() {
		rel.dir, rel.pub = filepath.Join(scratch, "camrec-8.0.0"), pub
		rel.m, rel.err = buildCamrec(t, rel.dir)
	})
	if rel.err != nil {
		t.Fatalf("build camrec 8: %v", rel.err)
	}
	return rel
}

// TestCamrecReleaseReproducible builds camrec 8 a second time, its
// initramfs compiled from scratch where the first took what Go's build
// cache held, and checks that every file is byte for byte the first
// build's, that minisign
// verifies the manifest, and that the ESP passes fsck.vfat.
func TestCamrecReleaseReproducible(t *testing.T) {
	r := camrec8(t)
	second := t.TempDir()
	keyFile, _ := signingKey(t)
	if _, err := camrec.BuildV8FromScratch(repoRoot(t), filepath.Join(repoRoot(t), ".cache"), second, keyFile, io.Discard); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(r.dir, "*"))
	if len(names) != 4 {
		t.Errorf("release holds %v, want manifest, signature and two artifacts", names)
	}
	for _, n := range names {
		a, _ := os.ReadFile(n)
		b, err := os.ReadFile(filepath.Join(second, filepath.Base(n)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds (%v)", filepath.Base(n), err)
		}
	}
	manifest := filepath.Join(r.dir, "manifest.json")
	if out, err := exec.Command("minisign", "-Vm", manifest, "-p", r.pub).CombinedOutput(); err != nil {
		t.Errorf("minisign -V: %v\n%s", err, out)
	}
	esp := extractArtifact(t, r, "esp")
	if out, err := exec.Command("fsck.vfat", "-n", esp).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n on the ESP: %v\n%s", err, out)
	}
	if out, err := exec.Command("mtype", "-i", esp, "::/loader/entries/camrec.conf").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "root=PARTUUID="+partUUID(r.m, "root")) {
		t.Errorf("boot entry does not name the root's PARTUUID: %v\n%s", err, out)
	}
}

func partUUID(m *release.Manifest, name string) string {
	for _, p := range m.Layout.Partitions {
		if p.Name == name {
			return p.UUID
		}
	}
	return ""
}

// extractArtifact decompresses an artifact into a file, checking it.
func extractArtifact(t *testing.T, r camrecRelease, name string) string {
	t.Helper()
	for _, a := range r.m.Artifacts {
		if a.Name != name {
			continue
		}
		rc, err := a.Open(r.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		out := filepath.Join(t.TempDir(), name+".img")
		f, _ := os.Create(out)
		defer f.Close()
		if _, err := io.Copy(f, rc); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatalf("no artifact %s", name)
	return ""
}

// installWithHostTools lays a release onto a disk image the way the
// migration will: the layout's GPT by sfdisk, each artifact written at its
// partition, the state partition made by mkfs.ext4 from stateTree.
func installWithHostTools(t *testing.T, r camrecRelease, disk string, size int64, stateTree string) {
	t.Helper()
	if err := fixture.Blank(disk, size); err != nil {
		t.Fatal(err)
	}
	ext, err := r.m.Layout.Place(size)
	if err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\n"
	for _, e := range ext {
		typ, _ := e.TypeGUID()
		script += fmt.Sprintf("start=%d, size=%d, type=%s, uuid=%s, name=%s\n", e.Start/512, e.Bytes/512, typ, e.UUID, e.Name)
	}
	if _, err := fixture.Run(script, "sfdisk", "-q", disk); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, e := range ext {
		switch e.Role {
		case release.RoleArtifact:
			for _, a := range r.m.Artifacts {
				if a.Name == e.Artifact {
					rc, err := a.Open(r.dir)
					if err != nil {
						t.Fatal(err)
					}
					_, err = io.Copy(io.NewOffsetWriter(f, e.Start), rc)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
				}
			}
		case release.RoleEmpty:
			fsImg := filepath.Join(t.TempDir(), e.Name+".fs")
			if err := fixture.Blank(fsImg, e.Bytes); err != nil {
				t.Fatal(err)
			}
			if _, err := fixture.Run("", "mkfs.ext4", "-q", "-F", "-L", e.Name, "-d", stateTree, fsImg); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(fsImg)
			if _, err := f.WriteAt(data, e.Start); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	sum, err := fixture.SHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestCamrecV8BootsUnderOVMF installs camrec 8 on a disk with a v7
// configuration and index restored into its state partition and the v7
// data disk reattached read-only, boots it under OVMF (systemd-boot, its
// Go initrd, its squashfs root), and checks its health report against what
// the v7 fixture held; the data disk is unchanged.
func TestCamrecV8BootsUnderOVMF(t *testing.T) {
	r := camrec8(t)
	a, err := camrec.BuildV7(t.TempDir(), camrec.VariantA, camrec.Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	write := func(rel string, fill func(io.Writer) error) {
		p := filepath.Join(state, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fill(f); err != nil {
			t.Fatal(err)
		}
	}
	write("restore"+camrec.ConfigV7File, func(w io.Writer) error { return camrec.WriteConfigV7(w, a.Config) })
	write("restore"+camrec.IndexV1File, func(w io.Writer) error { return camrec.WriteIndexV1(w, a.Segments) })
	write("etc/fstab", func(w io.Writer) error {
		v := a.Volumes[0]
		_, err := fmt.Fprintf(w, "UUID=%s %s %s ro,noload 0 0\n", v.UUID, v.Mountpoint, v.FSType)
		return err
	})
	sys := filepath.Join(t.TempDir(), "v8.img")
	installWithHostTools(t, r, sys, 512<<20, state)
	dataBefore := fileSHA(t, a.Data[0].Path)

	got := bootV8(t, []qemu.Disk{{Path: sys, Bus: qemu.VirtioBlk, Serial: "V8-SYS"}, a.Data[0].Disk})
	if !reflect.DeepEqual(got, a.Expected) {
		t.Errorf("health report\n got %+v\nwant %+v", got, a.Expected)
	}
	if after := fileSHA(t, a.Data[0].Path); after != dataBefore {
		t.Error("the data disk changed")
	}
}
