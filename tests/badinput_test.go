package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/netboot"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/usbkey"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/media"
	jobs "github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/tree"
)

// badInput is one input passeur did not make and must refuse: built in a
// temporary folder, given to the mechanism the rescue or the host command
// runs on it, and refused by name.
type badInput struct {
	area  string // media, release, repository, disk, backup, journal, configuration, network
	input string
	// want is the named error the refusal wraps (errors.Is).
	want error
	// named, when set, is how the table names the refusal instead of
	// want, and match checks it: for a refusal with no sentinel of
	// passeur's own (os.Root's escape, an HTTP status).
	named string
	match func(error) bool
	// reader marks a mechanism that cannot write (a parser, a check of
	// bytes in memory, a read of an fs.FS): no "nothing written" check.
	// Otherwise run must watch (biGuard) everything the call could write.
	reader bool
	run    func(t *testing.T, g *biGuard) error
}

// biGuard records, just before the mechanism runs, the state of what it
// could write, to compare after it refused.
type biGuard struct {
	names  []string
	states []func() string
	before []string
}

// watch records the state of a file, a folder (everything below it) or
// an absent path.
func (g *biGuard) watch(t *testing.T, name, p string) {
	t.Helper()
	g.watchState(name, func() string { return biState(t, p) })
}

// watchState records any state: an output buffer, say.
func (g *biGuard) watchState(name string, state func() string) {
	g.names = append(g.names, name)
	g.states = append(g.states, state)
	g.before = append(g.before, state())
}

// biState hashes everything under p a write could change: names, types,
// modes, owners, sizes, times, link targets and contents; "absent" if p
// is not there.
func biState(t *testing.T, p string) string {
	t.Helper()
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	h := sha256.New()
	err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(q)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(p, q)
		fmt.Fprintf(h, "%q %v %d:%d %d %d\n", rel, st.Mode(), sys.Uid, sys.Gid, st.Size(), st.ModTime().UnixNano())
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(q)
			fmt.Fprintf(h, "-> %q\n", target)
		case st.Mode().IsRegular():
			f, err := os.Open(q)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", p, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestBadInputs is the table of the bad inputs the suite proves refused:
// each is built, given to passeur's own code as the rescue (or the host
// command) runs it, refused by its named error, and, where that code
// could write, everything it could write hashes as before. The table is
// logged at the end, one "area | input | error | nothing written" line
// each.
func TestBadInputs(t *testing.T) {
	f := biFixtures(t)
	rows := biRows(f)
	if len(rows) < 45 {
		t.Fatalf("%d bad inputs, want at least 45", len(rows))
	}
	seen := map[string]bool{}
	var table []string
	for _, r := range rows {
		key := r.area + " | " + r.input
		if seen[key] {
			t.Fatalf("%s listed twice", key)
		}
		seen[key] = true
		name := r.named
		if name == "" {
			name = biErrName(r.want)
		}
		written := "" // stays empty for a row -run leaves out
		t.Run(r.area+"/"+r.input, func(t *testing.T) {
			written = "skipped" // until the row is through
			g := &biGuard{}
			err := r.run(t, g)
			match := r.match
			if match == nil {
				match = func(err error) bool { return errors.Is(err, r.want) }
			}
			if err == nil || !match(err) {
				t.Errorf("got %v, want %s", err, name)
			} else {
				t.Logf("refused: %v", err)
			}
			switch {
			case r.reader && len(g.names) > 0:
				t.Errorf("a reader row watches %v", g.names)
			case !r.reader && len(g.names) == 0:
				t.Fatal("a row whose mechanism can write watches nothing")
			}
			for i, st := range g.states {
				if after := st(); after != g.before[i] {
					t.Errorf("%s changed (%s, now %s)", g.names[i], g.before[i], after)
				}
			}
			written = "reader"
			if !r.reader {
				written = "yes: " + strings.Join(g.names, ", ") + " unchanged"
			}
		})
		if written != "" {
			table = append(table, fmt.Sprintf("%s | %s | %s | %s", r.area, r.input, name, written))
		}
	}
	t.Logf("%d of %d bad inputs run:\narea | input | error | nothing written\n%s", len(table), len(rows), strings.Join(table, "\n"))
}

// biErrName names a sentinel as its package spells it.
func biErrName(err error) string {
	for _, n := range biSentinels {
		if n.err == err {
			return n.name
		}
	}
	return err.Error()
}

var biSentinels = []struct {
	name string
	err  error
}{
	{"ptable.ErrInvalidTable", ptable.ErrInvalidTable},
	{"fstab.ErrTooLarge", fstab.ErrTooLarge},
	{"fstab.ErrInvalidEntry", fstab.ErrInvalidEntry},
	{"journal.ErrCorrupt", journal.ErrCorrupt},
	{"migrate.ErrRunMismatch", jobs.ErrRunMismatch},
	{"tree.ErrNotRegular", tree.ErrNotRegular},
	{"tree.ErrTooLarge", tree.ErrTooLarge},
	{"backup.ErrUnsafeEntry", backup.ErrUnsafeEntry},
	{"backup.ErrNotAllowed", backup.ErrNotAllowed},
	{"backup.ErrOtherMachine", backup.ErrOtherMachine},
	{"backup.ErrUnknownMachine", backup.ErrUnknownMachine},
	{"backup.ErrNotSealed", backup.ErrNotSealed},
	{"backup.ErrBadSeal", backup.ErrBadSeal},
	{"backup.ErrCorrupt", backup.ErrCorrupt},
	{"media.ErrTooLarge", media.ErrTooLarge},
	{"media.ErrWrongArch", media.ErrWrongArch},
	{"sign.ErrBadSignature", sign.ErrBadSignature},
	{"config.ErrUnknownKey", config.ErrUnknownKey},
	{"config.ErrBadValue", config.ErrBadValue},
	{"version.ErrSyntax", version.ErrSyntax},
	{"release.ErrSyntax", release.ErrSyntax},
	{"release.ErrMissingField", release.ErrMissingField},
	{"release.ErrUnsafeName", release.ErrUnsafeName},
	{"release.ErrArtifactMismatch", release.ErrArtifactMismatch},
	{"repo.ErrBadPolicy", repo.ErrBadPolicy},
	{"repo.ErrBadTagName", repo.ErrBadTagName},
	{"fetch.ErrTooLarge", fetch.ErrTooLarge},
	{"fetch.ErrShort", fetch.ErrShort},
	{"fetch.ErrSize", fetch.ErrSize},
	{"fetch.ErrRedirect", fetch.ErrRedirect},
	{"fetch.ErrStalled", fetch.ErrStalled},
	{"fetch.ErrStatus", fetch.ErrStatus},
	{"netboot.ErrUnsafeChar", netboot.ErrUnsafeChar},
	{"usbkey.ErrNoTrustedKey", usbkey.ErrNoTrustedKey},
	{"usbkey.ErrKeySize", usbkey.ErrKeySize},
	{"usbkey.ErrSamePlace", usbkey.ErrSamePlace},
	{"fat.ErrSize", fat.ErrSize},
}

// biFix is what the rows share: the vendor's signing key (the one the
// rescue trusts), another key nobody trusts, and the camrec 8 manifest.
type biFix struct {
	sk, otherSK    minisign.PrivateKey
	pk, otherPK    minisign.PublicKey
	manifest       []byte // image/release/testdata/camrec-8.0.0.json
	profile        []byte // image/release/testdata/profile-camrec.json
	otherArch      string
	machine, other backup.MachineID
}

func biFixtures(t *testing.T) *biFix {
	t.Helper()
	f := &biFix{otherArch: "arm64",
		machine: backup.MachineID{RootUUID: "6a1f0c2e-9d4b-4e1a-8c3f-2b7d5e9a0c11", Serial: "CAMREC-SN-0001"},
		other:   backup.MachineID{RootUUID: "0d6a9e1b-3c55-4f0e-9a77-5e2f1b8c4d20", Serial: "CAMREC-SN-0001"}, // cloned disk serial
	}
	if runtime.GOARCH == "arm64" {
		f.otherArch = "amd64"
	}
	f.sk, f.pk = biKeyPair(t)
	f.otherSK, f.otherPK = biKeyPair(t)
	var err error
	if f.manifest, err = os.ReadFile("../image/release/testdata/camrec-8.0.0.json"); err != nil {
		t.Fatal(err)
	}
	if f.profile, err = os.ReadFile("../image/release/testdata/profile-camrec.json"); err != nil {
		t.Fatal(err)
	}
	return f
}

func biKeyPair(t *testing.T) (minisign.PrivateKey, minisign.PublicKey) {
	t.Helper()
	pub, priv, err := sign.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	var sk minisign.PrivateKey
	var pk minisign.PublicKey
	if err := sk.UnmarshalText(priv); err != nil {
		t.Fatal(err)
	}
	if err := pk.UnmarshalText(bytes.TrimSpace(pub)); err != nil {
		t.Fatal(err)
	}
	return sk, pk
}

// biReplace replaces old, which must occur once, in data.
func biReplace(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	if n := bytes.Count(data, []byte(old)); n != 1 {
		t.Fatalf("%q occurs %d times", old, n)
	}
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}

// biWrite writes files (relative name: content) under dir.
func biWrite(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// biSparse makes p a sparse file of size bytes.
func biSparse(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Skipf("no sparse file of %d bytes here: %v", size, err)
	}
}

// --- media: a release folder as the rescue reads it off the key.

// verifyOnMedia lays files (releases/camrec-8.0.0/…) on a media folder
// and verifies the release as the rescue does: through a tree
// of the mounted key (package tree), against the trusted key.
func (f *biFix) verifyOnMedia(t *testing.T, files map[string][]byte, trusted ...minisign.PublicKey) error {
	t.Helper()
	dir := t.TempDir()
	biWrite(t, dir, files)
	return f.verifyDir(t, dir, trusted...)
}

func (f *biFix) verifyDir(t *testing.T, dir string, trusted ...minisign.PublicKey) error {
	t.Helper()
	if trusted == nil {
		trusted = []minisign.PublicKey{f.pk}
	}
	tr, err := tree.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, err = media.VerifyRelease(tr, "releases/camrec-8.0.0", trusted)
	return err
}

const biRel = "releases/camrec-8.0.0/"

// biSigned is the manifest and its signature by sk.
func biSigned(sk minisign.PrivateKey, manifest []byte) map[string][]byte {
	return map[string][]byte{biRel + "manifest.json": manifest, biRel + "manifest.json.minisig": sign.Sign(sk, manifest, "test release")}
}

// --- usbkey: the key passeur key makes.

// keyContent is a key's content: small stand-ins for the loader, kernel
// and initramfs, and one release of two small artifacts whose manifest
// edit may change before it is signed by sk.
func (f *biFix) keyContent(t *testing.T, sk minisign.PrivateKey, edit func([]byte) []byte) usbkey.Content {
	t.Helper()
	dir := t.TempDir()
	m, err := release.Parse(f.manifest)
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(dir, "rel")
	os.MkdirAll(rel, 0o755)
	m.Artifacts = nil
	for _, name := range []string{"esp", "root"} {
		a, err := release.WriteArtifact(rel, name, bytes.NewReader(bytes.Repeat([]byte(name), 1000)))
		if err != nil {
			t.Fatal(err)
		}
		m.Artifacts = append(m.Artifacts, a)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		data = edit(data)
	}
	biWrite(t, rel, map[string][]byte{"manifest.json": data, "manifest.json.minisig": sign.Sign(sk, data, "test release")})
	biWrite(t, dir, map[string][]byte{"loader.efi": []byte("MZ loader"), "vmlinuz": []byte("kernel"), "initramfs": []byte("cpio")})
	return usbkey.Content{Loader: filepath.Join(dir, "loader.efi"), Kernel: filepath.Join(dir, "vmlinuz"), Initramfs: filepath.Join(dir, "initramfs"),
		Cmdline: "console=ttyS0", Releases: []string{rel}, Trusted: []minisign.PublicKey{f.pk}}
}

// biKeyImage runs usbkey.Image over an earlier key image, watching the
// folder it lies in (the image, and no temporary file left).
func biKeyImage(t *testing.T, g *biGuard, size int64, c usbkey.Content) error {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "key.img")
	biWrite(t, dir, map[string][]byte{"key.img": []byte("an earlier key image\n")})
	g.watch(t, "key image folder", dir)
	return usbkey.Image(img, size, c)
}

// biKeyPrepare runs usbkey.Prepare onto a key folder holding an earlier
// backup, watching it.
func biKeyPrepare(t *testing.T, g *biGuard, c usbkey.Content) error {
	t.Helper()
	dir := t.TempDir()
	biWrite(t, dir, map[string][]byte{"Backup/camrec-a/2026-01-01T000000Z/COMPLETE": []byte("x"), "passeur/media.json": []byte(medialayout.MarkerData)})
	g.watch(t, "key folder", dir)
	return usbkey.Prepare(dir, c)
}

// --- disk: partition tables crafted with valid CRCs.

const (
	biDiskSize    = 64 << 20
	biDiskSectors = biDiskSize / 512
)

var biLE = binary.LittleEndian

// biGPT lays a valid two-partition GPT for a 64 MiB disk with Encode, lets
// edit change the primary header and entry array, computes both CRCs
// again (a reader checking CRCs only takes it as intact), and writes it
// on a sparse disk image.
func biGPT(t *testing.T, edit func(hdr, ents []byte)) string {
	t.Helper()
	tab := &ptable.Table{Type: "gpt", ID: "6b1c7e35-2c51-4b5e-9d43-0a5a1f3c7e01", Partitions: []ptable.Entry{
		{Number: 1, Start: 2048, Sectors: 4096, Type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", UUID: "0b6f4a56-1111-4e0e-8a55-0d7e3bd3a001", Name: "esp"},
		{Number: 2, Start: 8192, Sectors: 8192, Type: "0fc63daf-8483-4772-8e79-3d69d8477de4", UUID: "0b6f4a56-2222-4e0e-8a55-0d7e3bd3a002", Name: "data"},
	}}
	im, err := tab.Encode(ptable.Geometry{Size: biDiskSize, SectorSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	var hdr, ents []byte
	for i := range im {
		switch im[i].Offset {
		case 512:
			hdr = im[i].Data[:512]
		case 1024:
			ents = im[i].Data
		}
	}
	if hdr == nil || ents == nil || string(hdr[:8]) != "EFI PART" {
		t.Fatal("no primary GPT header and entries in the encoded image")
	}
	edit(hdr, ents)
	biLE.PutUint32(hdr[88:], crc32.ChecksumIEEE(ents))
	clear(hdr[16:20])
	biLE.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:92]))
	return biDisk(t, im)
}

// biDisk writes im on a sparse 64 MiB disk image.
func biDisk(t *testing.T, im ptable.Image) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	biSparse(t, p, biDiskSize)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := im.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return p
}

// biMBR is a disk image whose MBR holds the given primary entries (type,
// start, sectors) and extended boot records at the given LBAs, each a
// logical entry and a link (relative start, sectors).
func biMBR(t *testing.T, primary [][3]uint32, ebrs map[uint64][4]uint32) string {
	t.Helper()
	mbr := make([]byte, 512)
	biLE.PutUint32(mbr[440:], 0x7c0ffee7)
	for i, p := range primary {
		e := mbr[446+16*i:]
		e[4] = byte(p[0])
		biLE.PutUint32(e[8:], p[1])
		biLE.PutUint32(e[12:], p[2])
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	im := ptable.Image{{Offset: 0, Data: mbr}}
	for at, r := range ebrs {
		ebr := make([]byte, 512)
		ebr[446+4] = 0x83
		biLE.PutUint32(ebr[446+8:], r[0])
		biLE.PutUint32(ebr[446+12:], r[1])
		if r[2] != 0 {
			ebr[462+4] = 0x05
			biLE.PutUint32(ebr[462+8:], r[2])
			biLE.PutUint32(ebr[462+12:], r[3])
		}
		ebr[510], ebr[511] = 0x55, 0xAA
		im = append(im, ptable.Write{Offset: int64(at) * 512, Data: ebr})
	}
	return biDisk(t, im)
}

// biReadTable reads the table of the disk image as inventory does: the
// device opened read-only, 512-byte sectors.
func biReadTable(t *testing.T, p string) error {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := ptable.Read(f, 512)
	if err == nil {
		return fmt.Errorf("read as %+v", tab)
	}
	return err
}

// --- disk: the old system's root, read as a tree.

// biOldRoot is an old system's root holding the given entries beside a
// plain etc/hostname, and a folder outside it with a secret.
func biOldRoot(t *testing.T, lay func(root, outside string)) string {
	t.Helper()
	outside := t.TempDir()
	biWrite(t, outside, map[string][]byte{"secret": []byte("the rescue's own file\n")})
	root := t.TempDir()
	biWrite(t, root, map[string][]byte{"etc/hostname": []byte("cam-01\n"), "etc/camrec/camrec.conf": []byte("site = Nord\n")})
	lay(root, outside)
	return root
}

// biReadTree reads name from root as roles reads the old system: a tree
// bounded by the default limit, read with fs.ReadFile, in a goroutine
// so that a hang fails the row instead of the suite.
func biReadTree(t *testing.T, root, name string) error {
	t.Helper()
	tr, err := tree.Open(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	done := make(chan error, 1)
	go func() {
		b, err := fs.ReadFile(tr, name)
		if err == nil {
			err = fmt.Errorf("read %d bytes", len(b))
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("reading %s hangs", name)
		return nil
	}
}

// biEscapes matches os.Root's refusal of a path leaving the root: it has no
// exported sentinel.
func biEscapes(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// --- journal: a run's job checked against what this boot computes.

// biJob is a migration job as NewJob plans it on a 64 MiB system disk
// (copied from initramfs/migrate's check fixture), the manifest, and the
// disk as this boot's inventory reads it.
func biJob(t *testing.T) (*release.Manifest, inventory.Disk, *jobs.Job) {
	t.Helper()
	const size = 64 << 20
	m := &release.Manifest{Product: "p", State: "state", Layout: release.Layout{Table: "gpt", Partitions: []release.Partition{
		{Name: "esp", Type: "esp", Size: release.Size{Bytes: 8 << 20}, Role: release.RoleArtifact, Artifact: "esp"},
		{Name: "state", Type: "linux-generic", Size: release.Size{Bytes: 16 << 20}, Role: release.RoleEmpty, Filesystem: "ext4"},
		{Name: "data", Type: "srv", Size: release.Size{Rest: true}, Role: release.RoleKeep, KeepLabel: "d"},
	}}, DataVolumes: release.DataVolumes{LabelPatterns: []string{"nvr-*"}}}
	sys := inventory.Disk{Path: "/dev/vda", Serial: "S1", Size: size, Table: &inventory.Table{Type: "gpt", ID: "11111111-2222-4333-8444-555555555555"},
		Partitions: []inventory.Partition{{Number: 1, Start: 1 << 20, Size: 30 << 20}, {Number: 2, Start: 40 << 20, Size: 8 << 20, PartUUID: "aaaaaaaa-0000-4000-8000-000000000001"}}}
	ext, err := m.Layout.PlaceKeeping(size, map[string]release.Extent{"data": {Start: 40 << 20, Bytes: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := jobs.NewJob("migrate", "releases/p-1", "sum", m, sys, release.Placement{Table: "gpt", Extents: ext}, nil, biSeed)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Check(m, "sum", biSeed, sys, jobs.OldTable); err != nil {
		t.Fatalf("the job as planned: %v", err)
	}
	return m, sys, j
}

const biSeed = "run-1\x00box"

// biCheckJob checks the job as journaled (JSON, as the journal carries
// it, edited by edit) against this boot's disk.
func biCheckJob(t *testing.T, edit func(j *jobs.Job, disk *inventory.Disk) (sum, seed string)) error {
	t.Helper()
	m, sys, j := biJob(t)
	sum, seed := edit(j, &sys)
	if sum == "" {
		sum = "sum"
	}
	if seed == "" {
		seed = biSeed
	}
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var journaled jobs.Job
	if err := json.Unmarshal(data, &journaled); err != nil {
		t.Fatal(err)
	}
	return journaled.Check(m, sum, seed, sys, jobs.OldTable)
}

// biOpenJournal writes data as a run's journal and takes it up as a
// resumed run does (journal.Open, which truncates a torn line and
// appends), watching the file.
func biOpenJournal(t *testing.T, g *biGuard, write func(p string)) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run", journal.File)
	os.MkdirAll(filepath.Dir(p), 0o755)
	write(p)
	g.watch(t, "journal", p)
	j, err := journal.Open(p)
	if err == nil {
		j.Close()
		return errors.New("taken up")
	}
	return err
}

func biHeaderLine(t *testing.T) string {
	t.Helper()
	d, _ := json.Marshal(journal.Header{Mode: "migrate", Machine: "serial S1, gpt 11111111-2222-4333-8444-555555555555", Host: "camrec-a"})
	r, _ := json.Marshal(journal.Record{Time: time.Date(2026, 11, 23, 16, 26, 32, 0, time.UTC), State: journal.StateRun, Detail: d})
	return string(r) + "\n"
}

// --- backup: a backup on the key, restored into a root.

var biPaths = []string{"/etc/camrec", "/var/lib/camrec/index"}

func biDirItem(p string) backup.Item {
	return backup.Item{Entry: backup.Entry{Path: p, Origin: backup.OriginSystem, Type: "dir", Mode: 0o755}}
}

func biLinkItem(p, target string) backup.Item {
	return backup.Item{Entry: backup.Entry{Path: p, Origin: backup.OriginSystem, Type: "symlink", Mode: 0o777, Target: target}}
}

func biFileItem(p, data string, mode uint32) backup.Item {
	return backup.Item{Entry: backup.Entry{Path: p, Origin: backup.OriginSystem, Type: "file", Mode: mode, Size: int64(len(data)),
		MTime: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}, Data: []byte(data)}
}

// biBackup writes items as a backup taken on id (nil: none recorded) and
// marks it complete without verifying it: what anyone holding the key can
// do.
func biBackup(t *testing.T, id *backup.MachineID, items []backup.Item) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), medialayout.BackupDir, "camrec-a", "2026-11-23T162632Z")
	if _, err := backup.Write(dir, backup.Manifest{Host: "camrec-a", MachineID: id}, items, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := backup.MarkComplete(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// restore restores the backup in dir as the migration's restore step
// does (the release's paths, this machine, optionally its secret) into a
// root with content, a folder outside it beside; both are watched.
func (f *biFix) restore(t *testing.T, g *biGuard, dir string, secret []byte) error {
	t.Helper()
	top := t.TempDir()
	root, outside := filepath.Join(top, "root"), filepath.Join(top, "outside")
	biWrite(t, root, map[string][]byte{"etc/camrec/camrec.conf": []byte("site = Est\n"), "etc/passwd": []byte("root:x:0:0::/root:/bin/sh\n"),
		"usr/local/bin/.keep": nil})
	biWrite(t, outside, map[string][]byte{"keep": []byte("rescue file\n")})
	g.watch(t, "restore root", root)
	g.watch(t, "folder beside it", outside)
	g.watch(t, "backup", dir)
	_, err := backup.Restore(dir, root, backup.RestoreOptions{Paths: biPaths, Machine: f.machine, UIDs: []int{0}, GIDs: []int{0}, Secret: secret})
	return err
}

// biForgeManifest edits the backup's manifest and makes SHA256SUMS and
// COMPLETE match it again, as anyone holding the key can.
func biForgeManifest(t *testing.T, dir string, edit func(m *backup.Manifest)) {
	t.Helper()
	mp := filepath.Join(dir, backup.ManifestFile)
	data, err := os.ReadFile(mp)
	if err != nil {
		t.Fatal(err)
	}
	var m backup.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	if data, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(mp, data, 0o644)
	biForgeSums(t, dir, func(lines []string) []string {
		for i, l := range lines {
			if strings.HasSuffix(l, "  "+backup.ManifestFile) {
				lines[i] = fmt.Sprintf("%x  %s", sha256.Sum256(data), backup.ManifestFile)
			}
		}
		return lines
	})
}

// biForgeSums edits SHA256SUMS and makes COMPLETE name it again.
func biForgeSums(t *testing.T, dir string, edit func([]string) []string) {
	t.Helper()
	sp := filepath.Join(dir, backup.SumsFile)
	data, err := os.ReadFile(sp)
	if err != nil {
		t.Fatal(err)
	}
	lines := edit(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"))
	os.WriteFile(sp, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	if err := backup.MarkComplete(dir); err != nil {
		t.Fatal(err)
	}
}

// --- repository: an account's policy, as signed into a target.

func biPolicy(custom string) error {
	raw := json.RawMessage(custom)
	_, err := repo.ParseCustom(&raw, (*repo.Account).Check)
	return err
}

// --- network: downloads and the lab bench's server.

// biFetch downloads from a server running h over a destination holding
// an earlier file, as the rescue fetches a release: the destination is
// watched, and, oversized, a refused body must leave no partial file.
func biFetch(t *testing.T, g *biGuard, h http.Handler, path string, o fetch.Options, oversized bool) error {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	dst := filepath.Join(t.TempDir(), "root.img.zst")
	biWrite(t, filepath.Dir(dst), map[string][]byte{"root.img.zst": []byte("the file as it was\n")})
	g.watch(t, "destination", dst)
	var err error
	if oversized {
		g.watchState(".part file", func() string {
			if _, serr := os.Stat(dst + ".part"); serr == nil && errors.Is(err, fetch.ErrTooLarge) {
				return "a partial file of an oversized body kept"
			}
			return "none"
		})
	}
	o.Backoff = time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = fetch.File(ctx, srv.URL+path, dst, o)
	return err
}

// biBody serves n bytes: chunked (length < 0), or declaring length.
func biBody(n, length int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if length >= 0 {
			w.Header().Set("Content-Length", strconv.Itoa(length))
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		w.Write(bytes.Repeat([]byte{'x'}, n))
	}
}

// biBundle is a netboot bundle of stand-in files with the given keys.
func biBundle(t *testing.T, keys map[string]string) netboot.Bundle {
	t.Helper()
	dir := t.TempDir()
	biWrite(t, dir, map[string][]byte{"vmlinuz": []byte("kernel"), "initramfs": []byte("cpio")})
	return netboot.Bundle{Kernel: filepath.Join(dir, "vmlinuz"), Initramfs: filepath.Join(dir, "initramfs"), BoardCmdline: "console=ttyS0",
		Keys: keys, Base: "http://10.0.2.100/"}
}

// biNetbootWrite writes b over an earlier bundle, watching it.
func biNetbootWrite(t *testing.T, g *biGuard, b netboot.Bundle) error {
	t.Helper()
	out := t.TempDir()
	biWrite(t, out, map[string][]byte{netboot.ScriptFile: []byte("#!ipxe\nkernel vmlinuz\n"), netboot.KernelFile: []byte("old kernel"), netboot.InitramfsFile: []byte("old cpio")})
	g.watch(t, "bundle folder", out)
	return netboot.Write(out, b)
}

// errNotServed is what the server's refusal to serve a file is named in
// the table: HTTP has no sentinel.
var errNotServed = errors.New("HTTP 404, nothing of the file served")

// biServe asks the lab bench's server for the path lay returns, its
// repository folder holding what lay puts there: errNotServed when it
// answers 404 and the secret outside is not in the body.
func biServe(t *testing.T, lay func(repoDir, outside string) string) error {
	t.Helper()
	bundle, repoDir, outside := t.TempDir(), t.TempDir(), t.TempDir()
	biWrite(t, bundle, map[string][]byte{netboot.ScriptFile: []byte("#!ipxe\n"), netboot.KernelFile: []byte("k"), netboot.InitramfsFile: []byte("i")})
	biWrite(t, repoDir, map[string][]byte{path.Join(repo.MetadataDir, "timestamp.json"): []byte(`{}`)})
	biWrite(t, outside, map[string][]byte{"secret": []byte("the lab host's own file\n")})
	p := lay(repoDir, outside)
	srv := httptest.NewServer(&netboot.Server{Bundle: bundle, Repo: repoDir, Stall: 5 * time.Second})
	defer srv.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(srv.URL + p)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte("own file")) {
		return fmt.Errorf("served the secret: %s", resp.Status)
	}
	if resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("%s", resp.Status)
	}
	return fmt.Errorf("%s: %w", p, errNotServed)
}

// --- configuration.

// biConfig loads a command line and a config.json as the agent does, and
// returns its errors; a refused key must leave the defaults in place.
func biConfig(t *testing.T, cmdline string, file []byte) error {
	t.Helper()
	c, errs := config.Load(cmdline, file)
	if len(errs) == 0 {
		return errors.New("no error")
	}
	if !reflect.DeepEqual(c, config.Default()) {
		t.Errorf("a refused key changed the configuration: %+v", c)
	}
	return errors.Join(errs...)
}

func biRows(f *biFix) []badInput {
	signedAs := func(t *testing.T, edit func([]byte) []byte) map[string][]byte {
		return biSigned(f.sk, edit(f.manifest))
	}
	rows := []badInput{
		// media: releases on the key, read through the key's tree.
		{area: "media", input: "manifest.json of 2 MiB (sparse)", want: media.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			dir := t.TempDir()
			biSparse(t, filepath.Join(dir, biRel+"manifest.json"), 2<<20)
			biWrite(t, dir, map[string][]byte{biRel + "manifest.json.minisig": sign.Sign(f.sk, f.manifest, "t")})
			return f.verifyDir(t, dir)
		}},
		{area: "media", input: "signature of 2 MiB (sparse)", want: media.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			dir := t.TempDir()
			biWrite(t, dir, map[string][]byte{biRel + "manifest.json": f.manifest})
			biSparse(t, filepath.Join(dir, biRel+"manifest.json.minisig"), 2<<20)
			return f.verifyDir(t, dir)
		}},
		{area: "media", input: "manifest edited after it was signed", want: sign.ErrBadSignature, reader: true, run: func(t *testing.T, g *biGuard) error {
			files := biSigned(f.sk, f.manifest)
			files[biRel+"manifest.json"] = biReplace(t, f.manifest, `">=7.14.0.2 <8"`, `">=1"`)
			return f.verifyOnMedia(t, files)
		}},
		{area: "media", input: "release signed by a key the rescue does not trust", want: sign.ErrBadSignature, reader: true, run: func(t *testing.T, g *biGuard) error {
			return f.verifyOnMedia(t, biSigned(f.otherSK, f.manifest))
		}},
		{area: "media", input: "release without a signature", want: sign.ErrBadSignature, reader: true, run: func(t *testing.T, g *biGuard) error {
			return f.verifyOnMedia(t, map[string][]byte{biRel + "manifest.json": f.manifest})
		}},
		{area: "media", input: "signature of another release's manifest", want: sign.ErrBadSignature, reader: true, run: func(t *testing.T, g *biGuard) error {
			other := biReplace(t, f.manifest, `"version": "8.0.0"`, `"version": "8.1.0"`)
			return f.verifyOnMedia(t, map[string][]byte{biRel + "manifest.json": f.manifest, biRel + "manifest.json.minisig": sign.Sign(f.sk, other, "t")})
		}},
		{area: "media", input: "signed release for another architecture", want: media.ErrWrongArch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return f.verifyOnMedia(t, signedAs(t, func(b []byte) []byte { return biReplace(t, b, `"arch": "amd64"`, `"arch": "`+f.otherArch+`"`) }))
		}},
		{area: "media", input: "manifest.json a link to /dev/zero", want: tree.ErrNotRegular, reader: true, run: func(t *testing.T, g *biGuard) error {
			dir := t.TempDir()
			biWrite(t, dir, map[string][]byte{biRel + "manifest.json.minisig": sign.Sign(f.sk, f.manifest, "t")})
			os.Symlink("/dev/zero", filepath.Join(dir, biRel+"manifest.json"))
			return f.verifyDir(t, dir)
		}},
		{area: "media", input: "signature a FIFO", want: tree.ErrNotRegular, reader: true, run: func(t *testing.T, g *biGuard) error {
			dir := t.TempDir()
			biWrite(t, dir, map[string][]byte{biRel + "manifest.json": f.manifest})
			if err := syscall.Mkfifo(filepath.Join(dir, biRel+"manifest.json.minisig"), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return f.verifyDir(t, dir)
		}},
		{area: "media", input: "passeur key: release signed by an untrusted key", want: sign.ErrBadSignature, run: func(t *testing.T, g *biGuard) error {
			return biKeyPrepare(t, g, f.keyContent(t, f.otherSK, nil))
		}},
		{area: "media", input: "passeur key: release without a signature", want: sign.ErrBadSignature, run: func(t *testing.T, g *biGuard) error {
			c := f.keyContent(t, f.sk, nil)
			os.Remove(filepath.Join(c.Releases[0], "manifest.json"+sign.Ext))
			return biKeyImage(t, g, 256<<20, c)
		}},
		{area: "media", input: "passeur key: releases but no trusted key", want: usbkey.ErrNoTrustedKey, run: func(t *testing.T, g *biGuard) error {
			c := f.keyContent(t, f.sk, nil)
			c.Trusted = nil
			return biKeyImage(t, g, 256<<20, c)
		}},
		{area: "media", input: "passeur key: the same release twice", want: usbkey.ErrSamePlace, run: func(t *testing.T, g *biGuard) error {
			c := f.keyContent(t, f.sk, nil)
			c.Releases = append(c.Releases, c.Releases[0])
			return biKeyPrepare(t, g, c)
		}},
		{area: "media", input: "passeur key: a 65 MiB key image", want: usbkey.ErrKeySize, run: func(t *testing.T, g *biGuard) error {
			return biKeyImage(t, g, 65<<20, f.keyContent(t, f.sk, nil))
		}},
		{area: "media", input: "passeur key: a key image of 1 GiB + 100 bytes", want: usbkey.ErrKeySize, run: func(t *testing.T, g *biGuard) error {
			return biKeyImage(t, g, 1<<30+100, f.keyContent(t, f.sk, nil))
		}},
		{area: "media", input: "FAT32 of 8 KiB in a key image", want: fat.ErrSize, run: func(t *testing.T, g *biGuard) error {
			p := filepath.Join(t.TempDir(), "key.img")
			biSparse(t, p, 4<<20)
			img, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			img.WriteAt([]byte("an earlier key's bytes"), 1<<20)
			g.watch(t, "key image", p)
			return fat.MakeAt(img, 1<<20, 8<<10, "PASSEUR", nil, nil, time.Unix(0, 0))
		}},
		{area: "media", input: "a FAT image of 8 KiB made over an earlier one", want: fat.ErrSize, run: func(t *testing.T, g *biGuard) error {
			p := filepath.Join(t.TempDir(), "ram-media.img")
			os.WriteFile(p, []byte("an earlier image's bytes"), 0o644)
			g.watch(t, "image", p)
			return fat.Make(p, 8<<10, "PASSEUR", nil, nil, time.Unix(0, 0))
		}},

		// release: manifests and profiles signed by the vendor's key but
		// not what passeur writes.
		{area: "release", input: "version 8.0.0-x/../../../passeur (passeur key)", want: version.ErrSyntax, run: func(t *testing.T, g *biGuard) error {
			return biKeyPrepare(t, g, f.keyContent(t, f.sk, func(b []byte) []byte { return biReplace(t, b, `"8.0.0"`, `"8.0.0-x/../../../passeur"`) }))
		}},
		{area: "release", input: "artifact swapped after signing (passeur key)", want: release.ErrArtifactMismatch, run: func(t *testing.T, g *biGuard) error {
			c := f.keyContent(t, f.sk, nil)
			if err := os.Rename(filepath.Join(c.Releases[0], "esp.img.zst"), filepath.Join(c.Releases[0], "x")); err != nil {
				t.Fatal(err)
			}
			os.Rename(filepath.Join(c.Releases[0], "root.img.zst"), filepath.Join(c.Releases[0], "esp.img.zst"))
			os.Rename(filepath.Join(c.Releases[0], "x"), filepath.Join(c.Releases[0], "root.img.zst"))
			return biKeyImage(t, g, 256<<20, c)
		}},
		{area: "release", input: "signed product ../../passeur", want: release.ErrUnsafeName, reader: true, run: func(t *testing.T, g *biGuard) error {
			return f.verifyOnMedia(t, signedAs(t, func(b []byte) []byte { return biReplace(t, b, `"product": "camrec"`, `"product": "../../passeur"`) }))
		}},
		{area: "release", input: "signed version with a NUL byte", want: version.ErrSyntax, reader: true, run: func(t *testing.T, g *biGuard) error {
			return f.verifyOnMedia(t, signedAs(t, func(b []byte) []byte { return biReplace(t, b, `"version": "8.0.0"`, `"version": "8.0.0\u0000"`) }))
		}},
		{area: "release", input: "artifact file manifest.json", want: release.ErrUnsafeName, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := release.Parse(biReplace(t, f.manifest, `"file": "esp.img.zst"`, `"file": "manifest.json"`))
			return err
		}},
		{area: "release", input: "artifact file ../../passeur/vmlinuz", want: release.ErrSyntax, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := release.Parse(biReplace(t, f.manifest, `"file": "root.img.zst"`, `"file": "../../passeur/vmlinuz"`))
			return err
		}},
		{area: "release", input: "manifest with a field of a newer format", want: release.ErrSyntax, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := release.Parse(biReplace(t, f.manifest, `"format": 1,`, `"format": 1, "wipe_all": true,`))
			return err
		}},
		{area: "release", input: "migrate_from range >=7.14 <<8", want: version.ErrSyntax, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := version.ParseRange(">=7.14 <<8")
			return err
		}},
		{area: "release", input: "version 8..0", want: version.ErrSyntax, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := version.Parse("8..0")
			return err
		}},
		{area: "release", input: "profile without recognize.files", want: release.ErrMissingField, reader: true, run: func(t *testing.T, g *biGuard) error {
			var p map[string]any
			json.Unmarshal(f.profile, &p)
			delete(p["recognize"].(map[string]any), "files")
			b, _ := json.Marshal(p)
			_, err := release.ParseProfile(b)
			return err
		}},
		{area: "release", input: "profile product ../x", want: release.ErrUnsafeName, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := release.ParseProfile(biReplace(t, f.profile, `"product": "camrec"`, `"product": "../x"`))
			return err
		}},
		{area: "release", input: "profile config path etc/../../root", want: release.ErrSyntax, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := release.ParseProfile(biReplace(t, f.profile, `"/etc/camrec"
  ]`, `"/etc/../../root"
  ]`))
			return err
		}},

		// repository: policy signed into the targets' custom metadata by
		// the vendor's keys, but not what passeur repo writes.
		{area: "repository", input: "policy of 64 KiB + 1 byte", want: repo.ErrBadPolicy, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biPolicy(`{"passeur":{"default":"8.0.0"}}` + strings.Repeat(" ", repo.MaxCustomBytes))
		}},
		{area: "repository", input: "default ../../../passeur", want: repo.ErrBadPolicy, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biPolicy(`{"passeur":{"default":"../../../passeur"}}`)
		}},
		{area: "repository", input: "tag named ../stable", want: repo.ErrBadTagName, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biPolicy(`{"passeur":{"default":"8.0.0","tags":{"../stable":"8.0.0"}}}`)
		}},
		{area: "repository", input: "257 test tags", want: repo.ErrBadPolicy, reader: true, run: func(t *testing.T, g *biGuard) error {
			var tags []string
			for i := 0; i < 257; i++ {
				tags = append(tags, fmt.Sprintf(`"t%d":"8.0.0"`, i))
			}
			return biPolicy(`{"passeur":{"default":"8.0.0","tags":{` + strings.Join(tags, ",") + `}}}`)
		}},
		{area: "repository", input: "a field passeur does not know", want: repo.ErrBadPolicy, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biPolicy(`{"passeur":{"default":"8.0.0","force":true}}`)
		}},
		{area: "repository", input: "rollout starting at 2000‰", want: repo.ErrBadPolicy, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biPolicy(`{"passeur":{"default":"8.1.0","rollout":{"previous":"8.0.0","start":"2026-12-01T00:00:00Z","start_permille":2000,"duration_seconds":3600}}}`)
		}},
		{area: "repository", input: "exits of a version that is no dead end", want: repo.ErrBadPolicy, reader: true, run: func(t *testing.T, g *biGuard) error {
			raw := json.RawMessage(`{"passeur":{"exits":["8.1.0"]}}`)
			_, err := repo.ParseCustom(&raw, (*repo.Release).Check)
			return err
		}},

		// disk: partition tables whose CRCs hold but whose fields do not.
		{area: "disk", input: "GPT of 4096 entries of 0xFFFFFF80 bytes", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(h, _ []byte) { biLE.PutUint32(h[80:], 4096); biLE.PutUint32(h[84:], 0xFFFFFF80) }))
		}},
		{area: "disk", input: "GPT entries of 129 bytes", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(h, _ []byte) { biLE.PutUint32(h[84:], 129) }))
		}},
		{area: "disk", input: "GPT alternate header past the disk", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(h, _ []byte) { biLE.PutUint64(h[32:], biDiskSectors) }))
		}},
		{area: "disk", input: "GPT entry array in the usable LBAs", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(h, _ []byte) { biLE.PutUint64(h[72:], 2048) }))
		}},
		{area: "disk", input: "GPT partition ending at LBA 2^64-1", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(_, e []byte) { biLE.PutUint64(e[128+40:], ^uint64(0)) }))
		}},
		{area: "disk", input: "GPT partitions overlapping", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(_, e []byte) { biLE.PutUint64(e[128+32:], 6000); biLE.PutUint64(e[128+40:], 9000) }))
		}},
		{area: "disk", input: "protective MBR without a GPT header", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biGPT(t, func(h, _ []byte) { copy(h, "NOT PART") }))
		}},
		{area: "disk", input: "MBR primary past the disk", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biMBR(t, [][3]uint32{{0x83, 2048, biDiskSectors}}, nil))
		}},
		{area: "disk", input: "MBR logical partitions overlapping", want: ptable.ErrInvalidTable, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biReadTable(t, biMBR(t, [][3]uint32{{0x05, 2048, 16384}},
				map[uint64][4]uint32{2048: {1, 2048, 2048, 100}, 4096: {16, 100, 1024, 100}, 3072: {16, 100, 0, 0}}))
		}},
		{area: "disk", input: "old root: config a link to /dev/zero", want: tree.ErrNotRegular, reader: true, run: func(t *testing.T, g *biGuard) error {
			root := biOldRoot(t, func(root, _ string) { os.Symlink("/dev/zero", filepath.Join(root, "etc/camrec/zero.conf")) })
			return biReadTree(t, root, "etc/camrec/zero.conf")
		}},
		{area: "disk", input: "old root: config a FIFO", want: tree.ErrNotRegular, reader: true, run: func(t *testing.T, g *biGuard) error {
			root := biOldRoot(t, func(root, _ string) {
				if err := syscall.Mkfifo(filepath.Join(root, "etc/camrec/fifo.conf"), 0o644); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
			})
			return biReadTree(t, root, "etc/camrec/fifo.conf")
		}},
		{area: "disk", input: "old root: config a link out of the root", want: tree.ErrNotRegular, reader: true, run: func(t *testing.T, g *biGuard) error {
			root := biOldRoot(t, func(root, outside string) {
				os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "etc/camrec/out.conf"))
			})
			return biReadTree(t, root, "etc/camrec/out.conf")
		}},
		{area: "disk", input: "old root: a folder linked out of the root", want: tree.ErrOutside, reader: true, run: func(t *testing.T, g *biGuard) error {
			root := biOldRoot(t, func(root, outside string) { os.Symlink(outside, filepath.Join(root, "etc/camrec/outdir")) })
			return biReadTree(t, root, "etc/camrec/outdir/secret")
		}},
		{area: "disk", input: "old root: a sparse file of 1 TiB", want: tree.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			root := biOldRoot(t, func(root, _ string) { biSparse(t, filepath.Join(root, "var/lib/camrec/index"), 1<<40) })
			return biReadTree(t, root, "var/lib/camrec/index")
		}},
		{area: "disk", input: "fstab of 1 MiB + 1 byte", want: fstab.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := fstab.Parse(io.MultiReader(strings.NewReader("# padding\n"), bytes.NewReader(bytes.Repeat([]byte("#\n"), 1<<19))))
			return err
		}},
		{area: "disk", input: "fstab of 4097 entries", want: fstab.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := fstab.Parse(strings.NewReader(strings.Repeat("LABEL=d /srv ext4 defaults 0 2\n", 4097)))
			return err
		}},
		{area: "disk", input: "fstab line of 64 KiB", want: fstab.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := fstab.Parse(strings.NewReader("LABEL=d /srv ext4 " + strings.Repeat("o,", 32<<10) + " 0 2\n"))
			return err
		}},
		{area: "disk", input: "mount unit of 2 MiB", want: fstab.ErrTooLarge, reader: true, run: func(t *testing.T, g *biGuard) error {
			_, err := fstab.ParseMountUnit(io.MultiReader(strings.NewReader("[Mount]\nWhat=/dev/vdb\nWhere=/srv\n"), bytes.NewReader(bytes.Repeat([]byte("#\n"), 1<<20))))
			return err
		}},
		{area: "disk", input: "fstab entry with a NUL in its mount point", want: fstab.ErrInvalidEntry, run: func(t *testing.T, g *biGuard) error {
			var out bytes.Buffer
			g.watchState("fstab written", func() string { return out.String() })
			return fstab.Write(&out, []fstab.Entry{{Spec: "UUID=0d6a9e1b", Mountpoint: "/srv/rec\x00/etc", Type: "ext4"}})
		}},
		{area: "disk", input: "fstab entry without a mount point", want: fstab.ErrInvalidEntry, run: func(t *testing.T, g *biGuard) error {
			var out bytes.Buffer
			g.watchState("fstab written", func() string { return out.String() })
			return fstab.Write(&out, []fstab.Entry{{Spec: "LABEL=camrec-data"}})
		}},

		// backup: backups on the key, restored into a root.
		{area: "backup", input: "file below a link of the backup", want: backup.ErrUnsafeEntry, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biDirItem("/etc/camrec/sub"), biLinkItem("/etc/camrec/x", "sub"),
				biFileItem("/etc/camrec/x/pwned", "owned\n", 0o644)}), nil)
		}},
		{area: "backup", input: "link with an absolute target", want: backup.ErrUnsafeEntry, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biLinkItem("/etc/camrec/tz", "/usr/share/zoneinfo/UTC")}), nil)
		}},
		{area: "backup", input: "link climbing above the root", want: backup.ErrUnsafeEntry, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biLinkItem("/etc/camrec/up", "../../../../outside")}), nil)
		}},
		{area: "backup", input: "the same path twice", want: backup.ErrUnsafeEntry, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biFileItem("/etc/camrec/a", "a\n", 0o644), biLinkItem("/etc/camrec/a", "camrec.conf")}), nil)
		}},
		{area: "backup", input: "path /etc/camrec/../passwd", want: backup.ErrUnsafeEntry, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biFileItem("/etc/camrec/../passwd", "root::0:0::/:/bin/sh\n", 0o644)}), nil)
		}},
		{area: "backup", input: "setuid /usr/local/bin/x 4755", want: backup.ErrNotAllowed, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/usr/local/bin/x", "#!/bin/sh\n", 0o4755)}), nil)
		}},
		{area: "backup", input: "path /etc/camrec.d/x beside an allowed one", want: backup.ErrNotAllowed, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biFileItem("/etc/camrec.d/x", "x\n", 0o644)}), nil)
		}},
		{area: "backup", input: "backup of another box with the same disk serial", want: backup.ErrOtherMachine, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, &f.other, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Ouest\n", 0o640)}), nil)
		}},
		{area: "backup", input: "backup recording no machine", want: backup.ErrUnknownMachine, run: func(t *testing.T, g *biGuard) error {
			return f.restore(t, g, biBackup(t, nil, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Ouest\n", 0o640)}), nil)
		}},
		{area: "backup", input: "unsealed backup on a box with a secret", want: backup.ErrNotSealed, run: func(t *testing.T, g *biGuard) error {
			secret, _ := backup.NewSecret()
			return f.restore(t, g, biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)}), secret)
		}},
		{area: "backup", input: "backup sealed by another box", want: backup.ErrBadSeal, run: func(t *testing.T, g *biGuard) error {
			secret, _ := backup.NewSecret()
			other, _ := backup.NewSecret()
			dir := biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)})
			if err := backup.Seal(dir, other); err != nil {
				t.Fatal(err)
			}
			return f.restore(t, g, dir, secret)
		}},
		{area: "backup", input: "sealed backup given a setuid file, sums and COMPLETE redone", want: backup.ErrBadSeal, run: func(t *testing.T, g *biGuard) error {
			secret, _ := backup.NewSecret()
			dir := biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/tool", "#!/bin/sh\n", 0o755)})
			if err := backup.Seal(dir, secret); err != nil {
				t.Fatal(err)
			}
			biForgeManifest(t, dir, func(m *backup.Manifest) { m.Entries[1].Mode = 0o4755 })
			return f.restore(t, g, dir, secret)
		}},
		{area: "backup", input: "SHA256SUMS naming ../../outside/keep", want: backup.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			dir := biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)})
			biForgeSums(t, dir, func(l []string) []string {
				return append(l, fmt.Sprintf("%x  ../../outside/keep", sha256.Sum256([]byte("rescue file\n"))))
			})
			return f.restore(t, g, dir, nil)
		}},
		{area: "backup", input: "piece named outside the backup folder", want: backup.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			dir := biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)})
			biForgeManifest(t, dir, func(m *backup.Manifest) { m.Entries[1].Pieces[0].Name = "../../elsewhere" })
			return f.restore(t, g, dir, nil)
		}},
		{area: "backup", input: "stored file changed after COMPLETE", want: backup.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			dir := biBackup(t, &f.machine, []backup.Item{biDirItem("/etc/camrec"), biFileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)})
			os.WriteFile(filepath.Join(dir, "files/etc/camrec/camrec.conf"), []byte("site = Sud!\n"), 0o644)
			return f.restore(t, g, dir, nil)
		}},
		{area: "backup", input: "backup taken through a folder linked out of the old root", named: "os.Root: path escapes from parent (no passeur sentinel)", match: biEscapes, reader: true, run: func(t *testing.T, g *biGuard) error {
			root := biOldRoot(t, func(root, outside string) { os.Symlink(outside, filepath.Join(root, "var")) })
			items, _, err := backup.Collect(root, []string{"/etc/camrec", "/var/secret"}, backup.OriginSystem)
			if err == nil {
				return fmt.Errorf("collected %d items", len(items))
			}
			return err
		}},

		// journal: a run's journal and its job, as found on the key.
		{area: "journal", input: "journal without its run header", want: journal.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			return biOpenJournal(t, g, func(p string) {
				os.WriteFile(p, []byte(`{"time":"2026-11-23T16:26:32Z","step":"table","state":"done"}`+"\n"), 0o644)
			})
		}},
		{area: "journal", input: "journal with a bad line before its end", want: journal.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			return biOpenJournal(t, g, func(p string) {
				os.WriteFile(p, []byte(biHeaderLine(t)+"{not json\n"+`{"time":"2026-11-23T16:26:33Z","step":"table","state":"begun"}`+"\n"), 0o644)
			})
		}},
		{area: "journal", input: "journal of 17 MiB (sparse)", want: journal.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			return biOpenJournal(t, g, func(p string) {
				biSparse(t, p, journal.MaxSize+1<<20)
				f, _ := os.OpenFile(p, os.O_WRONLY, 0)
				f.WriteAt([]byte(biHeaderLine(t)), 0)
				f.Close()
			})
		}},
		{area: "journal", input: "journal of zeros", want: journal.ErrCorrupt, run: func(t *testing.T, g *biGuard) error {
			return biOpenJournal(t, g, func(p string) { os.WriteFile(p, make([]byte, 4096), 0o644) })
		}},
		{area: "journal", input: "migrate job formatting a data disk", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biCheckJob(t, func(j *jobs.Job, _ *inventory.Disk) (string, string) {
				j.FormatData = []identity.Disk{{Serial: "VICTIM", Size: 1 << 30}}
				return "", ""
			})
		}},
		{area: "journal", input: "job with an extent moved", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biCheckJob(t, func(j *jobs.Job, _ *inventory.Disk) (string, string) { j.Extents[1].Start += 1 << 20; return "", "" })
		}},
		{area: "journal", input: "job of another run's seed", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biCheckJob(t, func(*jobs.Job, *inventory.Disk) (string, string) { return "", "run-2\x00box" })
		}},
		{area: "journal", input: "job carried to a second box with the same disk serial", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biCheckJob(t, func(_ *jobs.Job, d *inventory.Disk) (string, string) {
				d.Table = &inventory.Table{Type: "gpt", ID: "99999999-2222-4333-8444-555555555555"}
				return "", ""
			})
		}},
		{area: "journal", input: "job of another manifest", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biCheckJob(t, func(*jobs.Job, *inventory.Disk) (string, string) { return "other", "" })
		}},
		{area: "journal", input: "job with a health path ../../x", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biCheckJob(t, func(j *jobs.Job, _ *inventory.Disk) (string, string) { j.Health = "../../x"; return "", "" })
		}},
		{area: "journal", input: "install job formatting more disks than it reattaches", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			m, sys, _ := biJob(t)
			blank := sys
			blank.Table, blank.Partitions = nil, nil
			ext, err := m.Layout.PlaceKeeping(blank.Size, nil)
			if err != nil {
				t.Fatal(err)
			}
			j, err := jobs.NewJob("install", "releases/p-1", "sum", m, blank, release.Placement{Table: "gpt", Extents: ext}, nil, "seed")
			if err != nil {
				t.Fatal(err)
			}
			j.AddDataDisk(m, inventory.Disk{Path: "/dev/vdb", Serial: "D1", Size: 1 << 30}, "seed")
			if err := j.Check(m, "sum", "seed", blank, jobs.OldTable); err != nil {
				t.Fatalf("the install as planned: %v", err)
			}
			j.FormatData = append(j.FormatData, identity.Disk{Serial: "VICTIM", Size: 1 << 30})
			return j.Check(m, "sum", "seed", blank, jobs.OldTable)
		}},
		{area: "journal", input: "install job reattaching a volume of another label", want: jobs.ErrRunMismatch, reader: true, run: func(t *testing.T, g *biGuard) error {
			m, sys, _ := biJob(t)
			blank := sys
			blank.Table, blank.Partitions = nil, nil
			ext, _ := m.Layout.PlaceKeeping(blank.Size, nil)
			j, err := jobs.NewJob("install", "releases/p-1", "sum", m, blank, release.Placement{Table: "gpt", Extents: ext}, nil, "seed")
			if err != nil {
				t.Fatal(err)
			}
			j.AddDataDisk(m, inventory.Disk{Path: "/dev/vdb", Serial: "D1", Size: 1 << 30}, "seed")
			v := j.Reattach[0]
			v.Label = "other"
			j.Reattach = []roles.Volume{v}
			return j.Check(m, "sum", "seed", blank, jobs.OldTable)
		}},

		// configuration: the kernel command line and the key's config.json.
		{area: "configuration", input: "passeur.mdoe=install", want: config.ErrUnknownKey, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "console=ttyS0 passeur.mdoe=install", nil)
		}},
		{area: "configuration", input: "passeur.mode=wipe", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "passeur.mode=wipe", nil)
		}},
		{area: "configuration", input: "passeur.backup=../../etc", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "passeur.backup=../../etc", nil)
		}},
		{area: "configuration", input: "passeur.repo=file:///etc", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "passeur.repo=file:///etc", nil)
		}},
		{area: "configuration", input: "passeur.settle=-1", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "passeur.settle=-1", nil)
		}},
		{area: "configuration", input: "passeur.age-recipient=ssh-ed25519", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "passeur.age-recipient=ssh-ed25519", nil)
		}},
		{area: "configuration", input: "config.json not JSON", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "", []byte(`mode = "install"`))
		}},
		{area: "configuration", input: "config.json key modes", want: config.ErrUnknownKey, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "", []byte(`{"modes": "install"}`))
		}},
		{area: "configuration", input: "config.json mode an object", want: config.ErrBadValue, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biConfig(t, "", []byte(`{"mode": {"install": true}}`))
		}},

		// network: downloads, the netboot script, the lab bench's server.
		{area: "network", input: "chunked body past the signed size", want: fetch.ErrTooLarge, run: func(t *testing.T, g *biGuard) error {
			return biFetch(t, g, biBody(100<<10+1, -1), "/root.img.zst", fetch.Options{Size: 100 << 10}, true)
		}},
		{area: "network", input: "index of 64 MiB declared", want: fetch.ErrTooLarge, run: func(t *testing.T, g *biGuard) error {
			return biFetch(t, g, biBody(64<<20, 64<<20), "/index.json", fetch.Options{}, true)
		}},
		{area: "network", input: "body cut before the signed size", want: fetch.ErrShort, run: func(t *testing.T, g *biGuard) error {
			return biFetch(t, g, biBody(100<<10-10, 100<<10), "/root.img.zst", fetch.Options{Size: 100 << 10, Attempts: 2}, false)
		}},
		{area: "network", input: "Content-Length other than the signed size", want: fetch.ErrSize, run: func(t *testing.T, g *biGuard) error {
			return biFetch(t, g, biBody(100<<10-10, 100<<10-10), "/root.img.zst", fetch.Options{Size: 100 << 10}, false)
		}},
		{area: "network", input: "redirect to another host", want: fetch.ErrRedirect, run: func(t *testing.T, g *biGuard) error {
			other := httptest.NewServer(biBody(10, 10))
			defer other.Close()
			return biFetch(t, g, http.RedirectHandler(other.URL+"/root.img.zst", http.StatusFound), "/root.img.zst", fetch.Options{Size: 10}, false)
		}},
		{area: "network", input: "server sending nothing after its header", want: fetch.ErrStalled, run: func(t *testing.T, g *biGuard) error {
			done := make(chan struct{})
			t.Cleanup(func() { close(done) })
			return biFetch(t, g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				select {
				case <-done:
				case <-r.Context().Done():
				}
			}), "/root.img.zst", fetch.Options{Size: 10, Attempts: 1, Stall: 200 * time.Millisecond}, false)
		}},
		{area: "network", input: "HTTP 404 for a release file", want: fetch.ErrStatus, run: func(t *testing.T, g *biGuard) error {
			return biFetch(t, g, http.NotFoundHandler(), "/root.img.zst", fetch.Options{Size: 10}, false)
		}},
		{area: "network", input: "netboot repo value with \\r\\n", want: netboot.ErrUnsafeChar, run: func(t *testing.T, g *biGuard) error {
			return biNetbootWrite(t, g, biBundle(t, map[string]string{"mode": "install", "repo": "http://10.0.2.100/repo\r\nshell"}))
		}},
		{area: "network", input: "netboot value with \\v, \\f and ;", want: netboot.ErrUnsafeChar, run: func(t *testing.T, g *biGuard) error {
			return biNetbootWrite(t, g, biBundle(t, map[string]string{"mode": "install", "release": "8.0.0\v\f;shell"}))
		}},
		{area: "network", input: "netboot base URL with ||", want: netboot.ErrUnsafeChar, run: func(t *testing.T, g *biGuard) error {
			b := biBundle(t, map[string]string{"mode": "install"})
			b.Base = "http://10.0.2.100/||shell"
			return biNetbootWrite(t, g, b)
		}},
		{area: "network", input: "netboot key passeur.mdoe", want: config.ErrUnknownKey, run: func(t *testing.T, g *biGuard) error {
			return biNetbootWrite(t, g, biBundle(t, map[string]string{"mdoe": "install"}))
		}},
		{area: "network", input: "lab server: repository file a link out of its folder", named: "HTTP 404 (no sentinel)", want: errNotServed, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biServe(t, func(repoDir, outside string) string {
				os.MkdirAll(filepath.Join(repoDir, "camrec/8.0.0"), 0o755)
				os.Symlink(filepath.Join(outside, "secret"), filepath.Join(repoDir, "camrec/8.0.0/manifest.json"))
				return "/repo/camrec/8.0.0/manifest.json"
			})
		}},
		{area: "network", input: "lab server: repository folder a link out", named: "HTTP 404 (no sentinel)", want: errNotServed, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biServe(t, func(repoDir, outside string) string {
				os.Symlink(outside, filepath.Join(repoDir, "camrec"))
				return "/repo/camrec/secret"
			})
		}},
		{area: "network", input: "lab server: repository file a FIFO", named: "HTTP 404 (no sentinel)", want: errNotServed, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biServe(t, func(repoDir, _ string) string {
				if err := syscall.Mkfifo(filepath.Join(repoDir, "metadata/2.snapshot.json"), 0o644); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
				return "/repo/metadata/2.snapshot.json"
			})
		}},
		{area: "network", input: "lab server: %2e%2e/ out of the repository", named: "HTTP 404 (no sentinel)", want: errNotServed, reader: true, run: func(t *testing.T, g *biGuard) error {
			return biServe(t, func(repoDir, outside string) string {
				rel, err := filepath.Rel(repoDir, filepath.Join(outside, "secret"))
				if err != nil || !strings.HasPrefix(rel, "../") {
					t.Fatalf("%s from %s: %s %v", outside, repoDir, rel, err)
				}
				return "/repo/" + strings.ReplaceAll(rel, "..", "%2e%2e")
			})
		}},
	}
	return rows
}
