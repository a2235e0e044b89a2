package backup

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/progress"
)

// system makes a small installed root: a config folder with modes, owners
// and times to keep, a link, a file large enough to be split with a small
// piece size, and an index.
func system(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mt := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	files := []struct {
		p    string
		data string
		mode os.FileMode
		uid  int
	}{
		{"etc/camrec/camrec.conf", "site = Nord\n", 0o640, 1000},
		{"etc/camrec/keys/secret.key", "k3y", 0o600, 0},
		{"etc/camrec/big.bin", strings.Repeat("0123456789abcdef", 1000), 0o644, 0},
		{"etc/camrec/empty", "", 0o644, 0},
		{"var/lib/camrec/index/segments.v1", "camrec-index v1\nend 0 x\n", 0o644, 0},
		{"etc/fstab", "UUID=x / ext4 defaults 0 1\n", 0o644, 0},
	}
	for _, f := range files {
		p := filepath.Join(root, f.p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, f.mode)
		if os.Getuid() == 0 {
			os.Chown(p, f.uid, f.uid+1)
		}
		os.Chtimes(p, mt, mt)
	}
	os.Symlink("camrec.conf", filepath.Join(root, "etc/camrec/current.conf"))
	os.Chmod(filepath.Join(root, "etc/camrec/keys"), 0o700)
	os.Chtimes(filepath.Join(root, "etc/camrec/keys"), mt, mt)
	return root
}

var paths = []string{"/etc/camrec", "/var/lib/camrec/index", "/etc/fstab", "/etc/not-there"}

// here is the machine the tests' backups are taken on and restored to.
var here = MachineID{RootUUID: "6a1f0c2e-9d4b-4e1a-8c3f-2b7d5e9a0c11", Serial: "CAMREC-SN-0001"}

// restoreOptions restore the tests' backups: their paths, on their
// machine, keeping the owners system gives its files.
func restoreOptions() RestoreOptions {
	return RestoreOptions{Paths: paths, Machine: here, UIDs: []int{0, 1000}, GIDs: []int{0, 1, 1001}}
}

func write(t *testing.T, root, dir string, o Options) *Manifest {
	t.Helper()
	items, missing, err := Collect(root, paths, OriginSystem)
	if err != nil {
		t.Fatal(err)
	}
	items = append(items, Item{Entry: Entry{Path: "/plan.json", Origin: OriginPasseur, Type: "file", Mode: 0o644, Size: 4}, Data: []byte("{}\n\n")})
	m, err := Write(dir, Manifest{Host: "camrec-a", MachineID: &here, Missing: missing}, items, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBackupVerifyRestore(t *testing.T) {
	root := system(t)
	dir := filepath.Join(t.TempDir(), medialayout.BackupDir, "camrec-a", Stamp(time.Now()))
	var out bytes.Buffer
	var stored []string
	m := write(t, root, dir, Options{PieceSize: 5000, Progress: &progress.Progress{Label: "backup", Out: &out},
		Stored: func(e Entry) error { stored = append(stored, e.Path); return nil }})
	if len(m.Missing) != 1 || m.Missing[0] != "/etc/not-there" {
		t.Errorf("missing = %v", m.Missing)
	}
	if len(stored) != len(m.Entries) {
		t.Errorf("Stored called %d times for %d entries", len(stored), len(m.Entries))
	}
	if !strings.Contains(out.String(), "backup: ") || !strings.Contains(out.String(), "done in") {
		t.Errorf("progress: %q", out.String())
	}
	for _, e := range m.Entries {
		if e.Path == "/etc/camrec/big.bin" && len(e.Pieces) != 4 {
			t.Errorf("16000 bytes in pieces of 5000: %d pieces", len(e.Pieces))
		}
	}
	// Any PC checks it with sha256sum.
	cmd := exec.Command("sha256sum", "--strict", "-c", SumsFile)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}
	if IsComplete(dir) {
		t.Fatal("complete before verification")
	}
	if err := Verify(dir, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := MarkComplete(dir); err != nil {
		t.Fatal(err)
	}
	if !IsComplete(dir) {
		t.Fatal("not complete after MarkComplete")
	}

	dst := t.TempDir()
	got, err := Restore(dir, dst, restoreOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("nothing restored")
	}
	sameTree(t, root, dst, []string{"etc/camrec", "etc/camrec/keys", "etc/camrec/camrec.conf", "etc/camrec/keys/secret.key", "etc/camrec/big.bin", "etc/camrec/empty", "etc/camrec/current.conf", "var/lib/camrec/index/segments.v1", "etc/fstab"})
	if _, err := os.Stat(filepath.Join(dst, "plan.json")); err == nil {
		t.Error("passeur's own records are restored")
	}

	// A flipped byte is refused by name, before anything is written.
	piece := filepath.Join(dir, "files/etc/camrec/camrec.conf")
	os.WriteFile(piece, []byte("site = Sud\n"), 0o644)
	dst2 := t.TempDir()
	_, err = Restore(dir, dst2, restoreOptions())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "files/etc/camrec/camrec.conf") {
		t.Fatalf("tampered backup: %v", err)
	}
	if ents, _ := os.ReadDir(dst2); len(ents) != 0 {
		t.Errorf("a refused restore wrote %d entries", len(ents))
	}
	// A changed SHA256SUMS no longer matches COMPLETE.
	os.WriteFile(filepath.Join(dir, SumsFile), []byte{}, 0o644)
	if IsComplete(dir) {
		t.Error("complete with another SHA256SUMS")
	}
}

func sameTree(t *testing.T, a, b string, rels []string) {
	t.Helper()
	for _, r := range rels {
		sa, err1 := os.Lstat(filepath.Join(a, r))
		sb, err2 := os.Lstat(filepath.Join(b, r))
		if err1 != nil || err2 != nil {
			t.Errorf("%s: %v %v", r, err1, err2)
			continue
		}
		if sa.Mode() != sb.Mode() {
			t.Errorf("%s: mode %v, restored %v", r, sa.Mode(), sb.Mode())
		}
		if sa.Mode().IsRegular() || sa.IsDir() {
			if !sa.ModTime().Equal(sb.ModTime()) {
				t.Errorf("%s: mtime %v, restored %v", r, sa.ModTime(), sb.ModTime())
			}
		}
		ua, ub := sa.Sys().(*syscall.Stat_t), sb.Sys().(*syscall.Stat_t)
		if ua.Uid != ub.Uid || ua.Gid != ub.Gid {
			t.Errorf("%s: owner %d:%d, restored %d:%d", r, ua.Uid, ua.Gid, ub.Uid, ub.Gid)
		}
		if sa.Mode().IsRegular() {
			da, _ := os.ReadFile(filepath.Join(a, r))
			db, _ := os.ReadFile(filepath.Join(b, r))
			if !bytes.Equal(da, db) {
				t.Errorf("%s: content differs", r)
			}
		}
		if sa.Mode()&os.ModeSymlink != 0 {
			la, _ := os.Readlink(filepath.Join(a, r))
			lb, _ := os.Readlink(filepath.Join(b, r))
			if la != lb {
				t.Errorf("%s: link %q, restored %q", r, la, lb)
			}
		}
	}
}

func TestEncryptedBackupDecryptsWithAgeCLI(t *testing.T) {
	if _, err := exec.LookPath("age"); err != nil {
		t.Skip("age CLI not installed (./build.sh deps)")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "id.txt")
	os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600)
	root := system(t)
	dir := filepath.Join(t.TempDir(), "b")
	m := write(t, root, dir, Options{Recipients: []string{id.Recipient().String()}, PieceSize: 5000})
	if err := Verify(dir, nil); err != nil {
		t.Fatal(err)
	}
	MarkComplete(dir)
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		t.Error("plain manifest in an encrypted backup")
	}
	for _, e := range m.Entries {
		if e.Type != "file" || e.Origin != OriginSystem {
			continue
		}
		var names []string
		for _, p := range e.Pieces {
			names = append(names, filepath.Join(dir, p.Name))
		}
		// The pieces joined are what age -d reads.
		sh := exec.Command("sh", "-c", `cat "$@" | age -d -i `+idFile, "sh")
		sh.Args = append(sh.Args, names...)
		got, err := sh.Output()
		if err != nil {
			t.Fatalf("age -d %s: %v", e.Path, err)
		}
		want, _ := os.ReadFile(filepath.Join(root, e.Path))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: age -d gives %d bytes, want %d", e.Path, len(got), len(want))
		}
		if raw, _ := os.ReadFile(names[0]); len(want) > 8 && bytes.Contains(raw, want[:8]) {
			t.Errorf("%s: plain text on the media", e.Path)
		}
	}
	// Restore needs the identity, and with it gives the files back.
	if _, err := Restore(dir, t.TempDir(), restoreOptions()); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("restore without identity: %v", err)
	}
	dst := t.TempDir()
	o := restoreOptions()
	o.Identities = []age.Identity{id}
	if _, err := Restore(dir, dst, o); err != nil {
		t.Fatal(err)
	}
	sameTree(t, root, dst, []string{"etc/camrec/camrec.conf", "etc/camrec/big.bin", "var/lib/camrec/index/segments.v1"})
}

func TestResumeReusesVerifiedPieces(t *testing.T) {
	root := system(t)
	dir := filepath.Join(t.TempDir(), "b")
	first := write(t, root, dir, Options{PieceSize: 5000})
	prev := map[string]Entry{}
	for _, e := range first.Entries {
		prev[e.Origin+e.Path] = e
	}
	// One stored piece rots; its entry must be copied again, the others not.
	rotten := filepath.Join(dir, "files/etc/fstab")
	os.WriteFile(rotten, []byte("garbage"), 0o644)
	keep := filepath.Join(dir, "files/etc/camrec/camrec.conf")
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(keep, old, old)
	var copied []string
	write(t, root, dir, Options{PieceSize: 5000, Reuse: func(p, origin string) (Entry, bool) {
		e, ok := prev[origin+p]
		return e, ok
	}, Stored: func(e Entry) error { copied = append(copied, e.Path); return nil }})
	if st, _ := os.Stat(keep); !st.ModTime().Equal(old) {
		t.Error("an intact stored file was copied again")
	}
	if err := Verify(dir, nil); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}

func TestChoose(t *testing.T) {
	list := []Info{{Name: "2026-11-01T100000Z", Complete: true}, {Name: "2026-11-02T100000Z", Complete: true}, {Name: "2026-11-03T100000Z"}}
	if b, err := Choose(list, ""); err != nil || b.Name != "2026-11-02T100000Z" {
		t.Errorf("newest complete: %v %v", b.Name, err)
	}
	if b, err := Choose(list, "2026-11-01T100000Z"); err != nil || b.Name != "2026-11-01T100000Z" {
		t.Errorf("by name: %v %v", b.Name, err)
	}
	if _, err := Choose(list, "2026-11-03T100000Z"); !errors.Is(err, ErrIncomplete) {
		t.Errorf("incomplete by name: %v", err)
	}
	if _, err := Choose(list[2:], ""); !errors.Is(err, ErrNoBackup) {
		t.Errorf("none complete: %v", err)
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/camrec/a:b":  "files/etc/camrec/a%3Ab",
		"/etc/x.":          "files/etc/x%2E",
		"/etc/100%/b?":     "files/etc/100%25/b%3F",
		"/var/lib/x/y.cfg": "files/var/lib/x/y.cfg",
	} {
		if got := storedName(OriginSystem, in); got != want {
			t.Errorf("storedName(%q) = %q, want %q", in, got, want)
		}
	}
	if HostName("camrec a/1\n") != "camrec_a_1" || HostName("") != "unnamed" {
		t.Error("HostName")
	}
	items := []Item{{Entry: Entry{Path: "/etc/A", Origin: OriginSystem}}, {Entry: Entry{Path: "/etc/a", Origin: OriginSystem}}}
	if _, err := Write(t.TempDir(), Manifest{}, items, Options{}); !errors.Is(err, ErrNameClash) {
		t.Errorf("case clash: %v", err)
	}
}

// TestResumeTakesOnlyNamesItWrites: an entry the journal offers for reuse
// whose piece lies outside the backup folder (a crafted journal) is copied
// again, not referenced.
func TestResumeTakesOnlyNamesItWrites(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "b")
	content := "site = Nord\n"
	os.WriteFile(filepath.Join(base, "elsewhere"), []byte(content), 0o644)
	it := fileItem("/etc/camrec/camrec.conf", content, 0o640)
	sum := hexSum([]byte(content))
	offered := it.Entry
	offered.SHA256, offered.Pieces = sum, []Piece{{Name: "../elsewhere", Size: int64(len(content)), SHA256: sum}}
	m, err := Write(dir, Manifest{Host: "camrec-a"}, []Item{it}, Options{Reuse: func(string, string) (Entry, bool) { return offered, true }})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Entries[0].Pieces[0].Name; got != "files/etc/camrec/camrec.conf" {
		t.Errorf("piece %q kept from the journal", got)
	}
}

// TestCollectStaysInTheRoot: the old system's links are recorded, never
// followed, and a configured path through a link out of its root is an
// error, not a read of the rescue's files.
func TestCollectStaysInTheRoot(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("rescue"), 0o600)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/camrec"), 0o755)
	os.Symlink(outside, filepath.Join(root, "etc/camrec/out"))
	os.Symlink(outside, filepath.Join(root, "var"))
	items, _, err := Collect(root, []string{"/etc/camrec"}, OriginSystem)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Path == "/etc/camrec/out" && (it.Type != "symlink" || it.Target != outside) {
			t.Errorf("the link was not recorded as a link: %+v", it.Entry)
		}
		if strings.Contains(it.Path, "secret") {
			t.Errorf("followed a link out of the root: %s", it.Path)
		}
	}
	if _, _, err := Collect(root, []string{"/var/secret"}, OriginSystem); err == nil {
		t.Error("a path through a link out of the root was read")
	}
}
