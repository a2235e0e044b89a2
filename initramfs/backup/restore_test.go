package backup

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/passeur/passeur/image/medialayout"
)

// treeHash hashes everything under dir a restore could change: names,
// types, modes, owners, times, link targets and contents.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%q %v %d:%d %d %d\n", rel, st.Mode(), sys.Uid, sys.Gid, st.Size(), st.ModTime().UnixNano())
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(h, "-> %q\n", target)
		case st.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			io.Copy(h, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// world is a restore target and, beside it, a folder outside it, both
// with content: what a refused restore must leave as it was.
func world(t *testing.T) (top, root, outside string) {
	t.Helper()
	top = t.TempDir()
	root, outside = filepath.Join(top, "root"), filepath.Join(top, "outside")
	for _, d := range []string{"root/etc/camrec/sub", "root/usr/local/bin", "outside"} {
		os.MkdirAll(filepath.Join(top, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "etc/camrec/camrec.conf"), []byte("site = Est\n"), 0o640)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("rescue file\n"), 0o644)
	return top, root, outside
}

// forged writes items as a backup and marks it complete without
// verifying it: what anyone with the key can do.
func forged(t *testing.T, m Manifest, items []Item) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	if m.MachineID == nil {
		m.MachineID = &here
	}
	if _, err := Write(dir, m, items, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := MarkComplete(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dirItem(p string) Item {
	return Item{Entry: Entry{Path: p, Origin: OriginSystem, Type: "dir", Mode: 0o755}}
}

func linkItem(p, target string) Item {
	return Item{Entry: Entry{Path: p, Origin: OriginSystem, Type: "symlink", Mode: 0o777, Target: target}}
}

func fileItem(p, data string, mode uint32) Item {
	return Item{Entry: Entry{Path: p, Origin: OriginSystem, Type: "file", Mode: mode, Size: int64(len(data)),
		MTime: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}, Data: []byte(data)}
}

// TestRestoreRefusesBeforeWriting: each backup below is refused by name,
// and neither the restore root nor the folder beside it changes. Links
// lead into the test's folders only, never to the host's "/": run as root
// against a restore that follows them, a test must not be able to write
// the host's files.
func TestRestoreRefusesBeforeWriting(t *testing.T) {
	cases := []struct {
		name  string
		items func(outside string) []Item
		want  error
	}{
		{"file below a link to an absolute path outside the root", func(outside string) []Item {
			return []Item{dirItem("/etc/camrec"), linkItem("/etc/camrec/x", outside), fileItem("/etc/camrec/x/pwned", "owned\n", 0o644)}
		}, ErrUnsafeEntry},
		{"file below a link that stays inside", func(string) []Item {
			return []Item{dirItem("/etc/camrec"), linkItem("/etc/camrec/x", "sub"), fileItem("/etc/camrec/x/f", "f\n", 0o644)}
		}, ErrUnsafeEntry},
		{"link climbing above the root", func(string) []Item {
			return []Item{linkItem("/etc/camrec/up", "../../../../outside")}
		}, ErrUnsafeEntry},
		{"link out of the allowed paths", func(string) []Item {
			return []Item{linkItem("/etc/camrec/pw", "../passwd")}
		}, ErrUnsafeEntry},
		{"link turned around by another link", func(string) []Item {
			return []Item{linkItem("/etc/camrec/sub/up", ".."), linkItem("/etc/camrec/y", "sub/up/../../x")}
		}, ErrUnsafeEntry},
		{"absolute link", func(string) []Item {
			return []Item{linkItem("/etc/camrec/tz", "/usr/share/zoneinfo/UTC")}
		}, ErrUnsafeEntry},
		{"same path twice", func(string) []Item {
			return []Item{fileItem("/etc/camrec/a", "a\n", 0o644), linkItem("/etc/camrec/a", "camrec.conf")}
		}, ErrUnsafeEntry},
		{"path not clean", func(string) []Item {
			return []Item{fileItem("/etc/camrec/../passwd", "root::0:0::/:/bin/sh\n", 0o644)}
		}, ErrUnsafeEntry},
		{"relative path", func(string) []Item {
			return []Item{fileItem("etc/camrec/r", "r\n", 0o644)}
		}, ErrUnsafeEntry},
		{"path with ..", func(string) []Item {
			return []Item{fileItem("../outside/keep", "changed\n", 0o644)}
		}, ErrUnsafeEntry},
		{"the root itself", func(string) []Item {
			return []Item{{Entry: Entry{Path: "/", Origin: OriginSystem, Type: "dir", Mode: 0o777}}}
		}, ErrUnsafeEntry},
		{"setuid program outside the allowed paths", func(string) []Item {
			return []Item{dirItem("/etc/camrec"), fileItem("/usr/local/bin/x", "#!/bin/sh\n", 0o4755)}
		}, ErrNotAllowed},
		{"a path that only starts like an allowed one", func(string) []Item {
			return []Item{fileItem("/etc/camrec.d/x", "x\n", 0o644)}
		}, ErrNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top, root, outside := world(t)
			dir := forged(t, Manifest{Host: "camrec-a"}, c.items(outside))
			before := treeHash(t, top)
			_, err := Restore(dir, root, restoreOptions())
			if !errors.Is(err, c.want) {
				t.Fatalf("restore: %v, want %v", err, c.want)
			}
			if after := treeHash(t, top); after != before {
				t.Errorf("a refused restore changed the tree (%v)", err)
			}
		})
	}
}

func TestRestoreDropsSetuidAndForeignOwners(t *testing.T) {
	it := fileItem("/etc/camrec/tool", "#!/bin/sh\n", 0o6755)
	it.UID, it.GID = 4242, 4242
	own := fileItem("/etc/camrec/own.conf", "x\n", 0o1640)
	own.UID, own.GID = 1000, 1001
	dir := forged(t, Manifest{Host: "camrec-a"}, []Item{dirItem("/etc/camrec"), it, own})
	_, root, _ := world(t)
	if _, err := Restore(dir, root, restoreOptions()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rel      string
		mode     fs.FileMode
		uid, gid uint32
	}{{"etc/camrec/tool", 0o755, 0, 0}, {"etc/camrec/own.conf", 0o640, 1000, 1001}} {
		st, err := os.Lstat(filepath.Join(root, c.rel))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.rel, st.Mode(), c.mode)
		}
		if os.Getuid() != 0 {
			continue // only root gives files away
		}
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != c.uid || sys.Gid != c.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", c.rel, sys.Uid, sys.Gid, c.uid, c.gid)
		}
	}
}

// TestRestoreMapsInsideTheRoot: a restore into a folder of the root (the
// migration's restore/) keeps links relative to where they land.
func TestRestoreMapsInsideTheRoot(t *testing.T) {
	dir := forged(t, Manifest{Host: "camrec-a"}, []Item{dirItem("/etc/camrec"), fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640),
		linkItem("/etc/camrec/current.conf", "camrec.conf")})
	_, root, _ := world(t)
	o := restoreOptions()
	o.Map = func(p string) string { return "/restore" + p }
	if _, err := Restore(dir, root, o); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "restore/etc/camrec/current.conf")); err != nil || string(b) != "site = Nord\n" {
		t.Errorf("through the restored link: %q %v", b, err)
	}
	if matches, _ := filepath.Glob(filepath.Join(root, "restore/etc/camrec/*"+tmpSuffix)); len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestRestoreOnlyThisMachine(t *testing.T) {
	other := MachineID{RootUUID: "0d6a9e1b-3c55-4f0e-9a77-5e2f1b8c4d20", Serial: "CAMREC-SN-0001"} // cloned disk serial, own root
	items := []Item{dirItem("/etc/camrec"), fileItem("/etc/camrec/camrec.conf", "site = Ouest\n", 0o640)}
	for _, c := range []struct {
		name      string
		recorded  *MachineID
		allowOld  bool
		want      error
		restoreOK bool
	}{
		{"another machine sharing the host name", &other, false, ErrOtherMachine, false},
		{"another machine, even when old backups are allowed", &other, true, ErrOtherMachine, false},
		{"a backup recording no machine", nil, false, ErrUnknownMachine, false},
		{"a backup recording no machine, allowed", nil, true, nil, true},
		{"this machine", &here, false, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := Manifest{Host: "camrec-a", MachineID: c.recorded}
			dir := filepath.Join(t.TempDir(), "b")
			if _, err := Write(dir, m, items, Options{}); err != nil {
				t.Fatal(err)
			}
			MarkComplete(dir)
			top, root, _ := world(t)
			before := treeHash(t, top)
			o := restoreOptions()
			o.AllowUnrecorded = c.allowOld
			_, err := Restore(dir, root, o)
			if !errors.Is(err, c.want) || c.want == nil && err != nil {
				t.Fatalf("restore: %v, want %v", err, c.want)
			}
			if changed := treeHash(t, top) != before; changed != c.restoreOK {
				t.Errorf("tree changed: %v, want %v", changed, c.restoreOK)
			}
		})
	}
}

func TestMachineIDSame(t *testing.T) {
	a := MachineID{RootUUID: "r1", WWID: "w1", Serial: "s1"}
	for _, c := range []struct {
		name string
		this MachineID
		want bool
	}{
		{"same", a, true},
		{"other root", MachineID{RootUUID: "r2", WWID: "w1", Serial: "s1"}, false},
		{"other disk, same serial", MachineID{RootUUID: "r1", WWID: "w2", Serial: "s1"}, false},
		{"root gone after a migration: the disk decides", MachineID{WWID: "w1"}, true},
		{"root gone, other disk", MachineID{WWID: "w2", Serial: "s1"}, false},
		{"disk known by serial only here", MachineID{RootUUID: "r1", Serial: "s1"}, true},
		{"disk without identifiers here", MachineID{RootUUID: "r1"}, false},
		{"nothing to compare", MachineID{}, false},
	} {
		if got := a.Same(c.this); got != c.want {
			t.Errorf("%s: Same = %v", c.name, got)
		}
	}
	bare := MachineID{RootUUID: "r1"}
	if !bare.Same(MachineID{RootUUID: "r1"}) || bare.Same(MachineID{}) {
		t.Error("a disk with no identifiers: the root alone decides, and must be there")
	}
}

// TestChooseForPassesOverOtherMachines: two boxes share the host name
// camrec-a; the newest backup on the key is the other box's.
func TestChooseForPassesOverOtherMachines(t *testing.T) {
	media := t.TempDir()
	other := MachineID{RootUUID: "0d6a9e1b-3c55-4f0e-9a77-5e2f1b8c4d20", Serial: "CAMREC-SN-0002"}
	items := []Item{fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)}
	for _, b := range []struct {
		stamp string
		id    *MachineID
	}{{"2026-11-01T100000Z", &here}, {"2026-11-02T100000Z", &other}} {
		dir := filepath.Join(media, medialayout.BackupDir, "camrec-a", b.stamp)
		if _, err := Write(dir, Manifest{Host: "camrec-a", MachineID: b.id}, items, Options{}); err != nil {
			t.Fatal(err)
		}
		MarkComplete(dir)
	}
	list, err := List(media, "camrec-a")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := Choose(list, ""); b.Name != "2026-11-02T100000Z" {
		t.Fatalf("Choose, which reads no backup, picks the newest: %s", b.Name)
	}
	b, err := ChooseFor(list, "", restoreOptions())
	if err != nil || b.Name != "2026-11-01T100000Z" {
		t.Errorf("ChooseFor = %s, %v; want this machine's 2026-11-01T100000Z", b.Name, err)
	}
	if _, err := ChooseFor(list, "2026-11-02T100000Z", restoreOptions()); !errors.Is(err, ErrOtherMachine) {
		t.Errorf("the other machine's backup, named: %v", err)
	}
	o := restoreOptions()
	o.Machine = MachineID{RootUUID: "third", Serial: "CAMREC-SN-0003"}
	if _, err := ChooseFor(list, "", o); !errors.Is(err, ErrNoBackup) || !strings.Contains(err.Error(), "2026-11-02T100000Z") {
		t.Errorf("a third machine: %v", err)
	}
}

// TestRestoreReadsOnlyInsideTheBackup: a stored piece that is a link to a
// file outside the backup folder (a key formatted with a filesystem that
// has links) is not followed, even when SHA256SUMS lists its content.
func TestRestoreReadsOnlyInsideTheBackup(t *testing.T) {
	dir := forged(t, Manifest{Host: "camrec-a"}, []Item{fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)})
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("site = Nord\n"), 0o600)
	piece := filepath.Join(dir, "files/etc/camrec/camrec.conf")
	os.Remove(piece)
	if err := os.Symlink(outside, piece); err != nil {
		t.Fatal(err)
	}
	top, root, _ := world(t)
	before := treeHash(t, top)
	if err := Verify(dir, nil); err == nil {
		t.Error("Verify followed a link out of the backup")
	}
	if _, err := Restore(dir, root, restoreOptions()); err == nil {
		t.Error("Restore followed a link out of the backup")
	}
	if treeHash(t, top) != before {
		t.Error("a refused restore changed the tree")
	}
}

// TestReadsAreBounded: a FIFO does not hang the read-back, and a huge
// SHA256SUMS is refused by its size, not read.
func TestReadsAreBounded(t *testing.T) {
	dir := forged(t, Manifest{Host: "camrec-a"}, []Item{fileItem("/etc/camrec/camrec.conf", "site = Nord\n", 0o640)})
	piece := filepath.Join(dir, "files/etc/camrec/camrec.conf")
	os.Remove(piece)
	if err := syscall.Mkfifo(piece, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- Verify(dir, nil) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("a FIFO as a piece: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Verify hangs on a FIFO")
	}
	if err := os.Truncate(filepath.Join(dir, SumsFile), 1<<40); err != nil {
		t.Skipf("no sparse file here: %v", err)
	}
	if err := Verify(dir, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a 1 TiB %s: %v", SumsFile, err)
	}
}
