package staging

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fsprobe"
	"github.com/passeur/passeur/initramfs/mountinfo"
)

// mountinfo of a box: its system on vda, two recording disks, one of them
// mounted twice (whole, and a folder of it bound elsewhere), a read-only
// one, a USB stick, and a tmpfs.
const table = `22 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw
23 22 254:1 / /boot/efi rw,relatime shared:2 - vfat /dev/vda1 rw
24 22 0:21 / /run rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
30 22 254:17 / /srv/rec\0401 rw,relatime shared:10 - ext4 /dev/vdb1 rw
31 22 254:17 /clips /var/clips rw,relatime shared:10 - ext4 /dev/vdb1 rw
32 22 254:33 / /srv/rec2 ro,relatime shared:11 - xfs /dev/vdc1 ro
33 22 254:3 / /srv/sysrec rw,relatime shared:12 - ext4 /dev/vda3 rw
34 22 8:1 / /media/usb rw,relatime shared:13 - ext4 /dev/sda1 rw
35 22 254:49 / /srv/rec3 rw,relatime shared:14 - ext4 /dev/vdd1 rw
`

var devices = map[string]Device{
	"254:2":  {Path: "/dev/vda2", Disk: "vda", FS: &fsprobe.FS{Type: "ext4", Label: "camrec-root", UUID: "aaaa"}},
	"254:1":  {Path: "/dev/vda1", Disk: "vda", FS: &fsprobe.FS{Type: "vfat", Label: "EFI", UUID: "AB12-CD34"}},
	"254:17": {Path: "/dev/vdb1", Disk: "vdb", FS: &fsprobe.FS{Type: "ext4", Label: "rec-1", UUID: "bbbb"}},
	"254:33": {Path: "/dev/vdc1", Disk: "vdc", FS: &fsprobe.FS{Type: "xfs", Label: "rec-2", UUID: "cccc"}},
	"254:3":  {Path: "/dev/vda3", Disk: "vda", FS: &fsprobe.FS{Type: "ext4", Label: "rec-sys", UUID: "dddd"}},
	"8:1":    {Path: "/dev/sda1", Disk: "sda", FS: &fsprobe.FS{Type: "ext4", Label: "stick", UUID: "eeee"}},
	"254:49": {Path: "/dev/vdd1", Disk: "vdd", FS: &fsprobe.FS{Type: "ext4", Label: "rec-3"}},
}

func dev(majmin string) (Device, error) {
	d, ok := devices[majmin]
	if !ok {
		return Device{}, errors.New("not a block device")
	}
	return d, nil
}

func manifest() *release.Manifest {
	return &release.Manifest{Product: "camrec", MinMediaFree: 10 << 20,
		Staging: &release.Staging{Labels: []string{"rec-*"}, Dir: "passeur-staging"}}
}

func TestVolumes(t *testing.T) {
	mounts, err := mountinfo.Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	m := manifest()
	vols, err := Volumes(m, mounts, dev, "")
	if err != nil {
		t.Fatal(err)
	}
	// rec-1 once (its bound folder is not taken), not rec-2 (read-only),
	// rec-sys (the system's disk), the stick (not declared), rec-3 (no UUID).
	if len(vols) != 1 || vols[0].Point != "/srv/rec 1" || vols[0].UUID != "bbbb" || vols[0].Disk != "vdb" {
		t.Fatalf("volumes %+v: want /srv/rec 1 only", vols)
	}
	if p := vols[0].Param(m); p != "bbbb/passeur-staging" {
		t.Errorf("param %q", p)
	}
	if d := vols[0].Dir(m); d != "/srv/rec 1/passeur-staging" {
		t.Errorf("dir %q", d)
	}
	for want, why := range map[string]string{
		"/srv/rec2":    "read-only",
		"/srv/sysrec":  "a disk the system boots from",
		"/var/clips":   "not all of it",
		"/media/usb":   `labelled "stick"`,
		"/srv/rec3":    "no filesystem UUID",
		"/srv/nothing": "not a mount point",
		"/run":         "not a block device",
	} {
		_, err := Volumes(m, mounts, dev, want)
		if !errors.Is(err, ErrNoPlace) || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: %v, want ErrNoPlace saying %q", want, err, why)
		}
	}
	if v, err := Volumes(m, mounts, dev, "/srv/rec 1/"); err != nil || len(v) != 1 {
		t.Errorf("asked by its mount point: %+v %v", v, err)
	}
	// A volume on a device-mapper device over the system's disk.
	devices["254:50"] = Device{Path: "/dev/dm-0", Disk: "dm-0", Under: []string{"vda"}, FS: &fsprobe.FS{Type: "ext4", Label: "rec-lvm", UUID: "ffff"}}
	defer delete(devices, "254:50")
	lvm := append(mounts, mountinfo.Mount{Dev: "254:50", Root: "/", Point: "/srv/lvm", Type: "ext4"})
	if _, err := Volumes(m, lvm, dev, "/srv/lvm"); !errors.Is(err, ErrNoPlace) || !strings.Contains(err.Error(), "a disk the system boots from") {
		t.Errorf("a volume on a device-mapper device over the system's disk: %v", err)
	}
	// A system mount whose disk cannot be told: nothing is offered.
	unknown := append(mounts[:len(mounts):len(mounts)], mountinfo.Mount{Dev: "254:99", Root: "/", Point: "/usr", Type: "ext4"})
	if _, err := Volumes(m, unknown, dev, ""); !errors.Is(err, ErrNoPlace) || !strings.Contains(err.Error(), "cannot be told") {
		t.Errorf("/usr on a device that cannot be told: %v", err)
	}
	m.Staging = nil
	if _, err := Volumes(m, mounts, dev, ""); !errors.Is(err, ErrNotDeclared) {
		t.Errorf("undeclared: %v", err)
	}
}

func TestSize(t *testing.T) {
	m := manifest()
	if s := Size(m, 0); s != 10<<20+Slack {
		t.Errorf("nothing missing: %d", s)
	}
	if s := Size(m, 1); s%(1<<20) != 0 || s < 1+10<<20+Slack {
		t.Errorf("one byte missing: %d, not whole MiB or too small", s)
	}
}

// TestImage: the image made from a folder reads back through the reader
// the rescue and stage use, with the key's layout, and no run in it yet;
// a file beside that is not regular refuses the image.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(filepath.Join(in, "releases/camrec-8.1.0"), 0o755)
	os.MkdirAll(filepath.Join(in, "passeur"), 0o755)
	os.WriteFile(filepath.Join(in, "releases/camrec-8.1.0/manifest.json"), []byte(`{"product":"camrec"}`), 0o644)
	os.WriteFile(filepath.Join(in, StagedFile), []byte(`{"format":1}`), 0o644)
	img := filepath.Join(dir, ImageFile)
	if err := Make(img, MinImage, in, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(img + ".new"); err == nil {
		t.Error("the image's temporary file stayed")
	}
	i, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	if data, err := i.ReadFile("releases/camrec-8.1.0/manifest.json", 1<<10); err != nil || string(data) != `{"product":"camrec"}` {
		t.Errorf("manifest %q %v", data, err)
	}
	if _, err := i.ReadFile("releases/camrec-8.1.0/manifest.json", 4); err == nil {
		t.Error("a file over its bound was read")
	}
	if data, err := i.ReadFile(medialayout.Marker, 1<<10); err != nil || string(data) != medialayout.MarkerData {
		t.Errorf("marker %q %v", data, err)
	}
	for d, want := range map[string]string{"/": "Backup passeur releases", "releases": "camrec-8.1.0", medialayout.BackupDir: ""} {
		names, err := i.Names(d)
		if err != nil || strings.Join(names, " ") != want {
			t.Errorf("%s holds %v (%v), want %q", d, names, err, want)
		}
	}
	if done, open, err := Runs(img); err != nil || done+open != 0 {
		t.Errorf("a fresh image has runs: %d finished, %d not, %v", done, open, err)
	}
	if err := Make(img, MinImage-1, in, time.Now()); !errors.Is(err, ErrBadImage) {
		t.Errorf("too small an image: %v", err)
	}
	os.Symlink("/etc/passwd", filepath.Join(in, "link"))
	if err := Make(img, MinImage, in, time.Now()); err == nil {
		t.Error("a link was laid in the image")
	}
	os.WriteFile(filepath.Join(dir, "short"), make([]byte, 1<<20), 0o644)
	if _, err := OpenImage(filepath.Join(dir, "short")); !errors.Is(err, ErrBadImage) {
		t.Errorf("a 1 MiB file opened as an image: %v", err)
	}
}

// TestCopyOut: a run's folder comes out of the image whole, however deep
// and whatever its files' sizes (read on 512-byte boundaries only), into
// a folder of the root given; more than the limit is refused by name.
func TestCopyOut(t *testing.T) {
	from := t.TempDir()
	big := make([]byte, 200001)
	for i := range big {
		big[i] = byte(i*31 + i>>9)
	}
	deep := filepath.Join(from, "Backup/box/run/files/var/lib/camrec/index")
	os.MkdirAll(deep, 0o755)
	os.WriteFile(filepath.Join(deep, "segments.v1"), big, 0o644)
	os.WriteFile(filepath.Join(from, "Backup/box/run/MANIFEST.json"), []byte("{}\n"), 0o644)
	img := filepath.Join(t.TempDir(), ImageFile)
	if err := Make(img, MinImage, from, time.Now()); err != nil {
		t.Fatal(err)
	}
	i, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	work := t.TempDir()
	root, err := os.OpenRoot(work)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := i.CopyOut("Backup/box/run", root, "out", 1<<20); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(work, "out/files/var/lib/camrec/index/segments.v1"))
	if string(got) != string(big) {
		t.Errorf("the deep file came out %d bytes, changed", len(got))
	}
	if m, _ := os.ReadFile(filepath.Join(work, "out/MANIFEST.json")); string(m) != "{}\n" {
		t.Errorf("MANIFEST.json came out %q", m)
	}
	if err := i.CopyOut("Backup/box/run", root, "small", 100000); !errors.Is(err, ErrTooBig) {
		t.Errorf("a limit of 100000 bytes: %v, want ErrTooBig", err)
	}
}

// TestImageLies: a file whose directory entry says it is longer than its
// clusters hold (a log cut by a power loss, or an image made to lie) is
// an error of the image, not a crash of the reader.
func TestImageLies(t *testing.T) {
	from := t.TempDir()
	os.WriteFile(filepath.Join(from, "a.txt"), []byte("ten bytes\n"), 0o644)
	img := filepath.Join(t.TempDir(), ImageFile)
	if err := Make(img, MinImage, from, time.Now()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(img)
	at := strings.Index(string(data), "A       TXT")
	if at < 0 {
		t.Fatal("no directory entry for a.txt")
	}
	binary.LittleEndian.PutUint32(data[at+28:], 1<<20) // one cluster, a MiB said
	os.WriteFile(img, data, 0o644)
	i, err := OpenImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	if _, err := i.ReadFile("a.txt", 1<<21); err == nil {
		t.Error("a file longer than its clusters was read")
	}
	var out strings.Builder
	if _, err := i.copyFile("a.txt", &out, 1<<21); err == nil {
		t.Error("a file longer than its clusters was copied")
	}
}
