package newsys

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/migrate"
)

func testSystem(t *testing.T) System {
	t.Helper()
	job := &migrate.Job{State: "state", Health: "var/lib/camrec/health.json", Extents: []release.Extent{
		{Partition: release.Partition{Name: "esp", Type: "esp"}, Start: 1 << 20, Bytes: 64 << 20},
		{Partition: release.Partition{Name: "state", Type: "linux-generic"}, Start: 65 << 20, Bytes: 64 << 20},
	}}
	dir := t.TempDir()
	return System{Disk: "/dev/vda", Job: job, Mount: Folders{Root: filepath.Join(dir, "fs")}, Dir: filepath.Join(dir, "mnt")}
}

func TestFstabAndHealth(t *testing.T) {
	s := testSystem(t)
	if _, _, err := s.Health(); !errors.Is(err, ErrNoHealth) {
		t.Fatalf("Health of a new state: %v, want ErrNoHealth", err)
	}
	e := fstab.Entry{Spec: "UUID=0a2d2d7c-0000-4000-8000-000000000001", Mountpoint: "/srv/rec", Type: "ext4", Options: "defaults,nofail", Pass: 2}
	if err := s.WriteFstab([]fstab.Entry{e}); err != nil {
		t.Fatal(err)
	}
	umount, err := s.MountState(true)
	if err != nil {
		t.Fatal(err)
	}
	state := s.Path(StateDir)
	data, err := os.ReadFile(filepath.Join(state, "etc/fstab"))
	if err != nil || !strings.HasPrefix(string(data), FstabHeader) || !strings.Contains(string(data), "/srv/rec") {
		t.Errorf("fstab: %q %v", data, err)
	}
	if _, err := s.Mount.Mount(s.Disk, 1, 1, "ext4", state, false); err == nil {
		t.Error("mounted over a mounted state")
	}
	os.MkdirAll(filepath.Join(state, "var/lib/camrec"), 0o755)
	os.WriteFile(filepath.Join(state, s.Job.Health), []byte(" {\"ok\": false, \"why\": \"index\"}\n"), 0o644)
	if err := umount(); err != nil {
		t.Fatal(err)
	}
	data, ok, err := s.Health()
	if err != nil || ok || string(data) != `{"ok": false, "why": "index"}` {
		t.Errorf("Health: %q %v %v", data, ok, err)
	}
	for report, want := range map[string]string{`{"ok": true}`: "", `{"ok": "yes"}`: "no boolean", `{}`: "no boolean", `[`: "no boolean"} {
		ok, err := HealthOK([]byte(report))
		if want == "" && (err != nil || !ok) || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("HealthOK(%s) = %v %v", report, ok, err)
		}
	}
}

func TestHealthBounded(t *testing.T) {
	s := testSystem(t)
	umount, err := s.MountState(false)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Path(StateDir), s.Job.Health)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.Symlink("/etc/passwd", p)
	umount()
	if _, _, err := s.Health(); err == nil || errors.Is(err, ErrNoHealth) {
		t.Errorf("a health report that is a link: %v", err)
	}
	umount, _ = s.MountState(false)
	os.Remove(p)
	os.WriteFile(p, make([]byte, MaxHealth+1), 0o644)
	umount()
	if _, _, err := s.Health(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a health report too large: %v", err)
	}
}

func TestRewriteEntries(t *testing.T) {
	esp := t.TempDir()
	os.MkdirAll(filepath.Join(esp, EntriesDir), 0o755)
	entry := "title camrec 8\nlinux /vmlinuz\noptions root=PARTUUID=6A1E0B5C-0002-4B1A-9C3D-000000000002 ro\n"
	os.WriteFile(filepath.Join(esp, EntriesDir, "camrec.conf"), []byte(entry), 0o644)
	os.WriteFile(filepath.Join(esp, EntriesDir, "notes.txt"), []byte("nothing"), 0o644)
	uuids := map[string]string{"6a1e0b5c-0002-4b1a-9c3d-000000000002": "1234abcd-02"}
	changed, err := rewriteEntries(esp, uuids)
	if err != nil || len(changed) != 1 || changed[0] != "camrec.conf" {
		t.Fatalf("rewriteEntries: %v %v", changed, err)
	}
	data, _ := os.ReadFile(filepath.Join(esp, EntriesDir, "camrec.conf"))
	if !strings.Contains(string(data), "root=PARTUUID=1234abcd-02 ro") {
		t.Errorf("entry: %s", data)
	}
	// A unified kernel image naming the old PARTUUID: the table must not
	// be written.
	os.MkdirAll(filepath.Join(esp, "EFI/Linux"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/Linux/camrec.efi"), []byte("\x00MZ root=partuuid=6a1e0b5c-0002-4B1A-9c3d-000000000002"), 0o644)
	if _, err := rewriteEntries(esp, uuids); !errors.Is(err, ErrBootPath) {
		t.Errorf("an image still naming the old PARTUUID: %v, want ErrBootPath", err)
	}
}

func TestReplaceFold(t *testing.T) {
	if got := replaceFold("a=ABc x=abC\xff", "abc", "Z"); got != "a=Z x=Z\xff" {
		t.Errorf("replaceFold: %q", got)
	}
}
