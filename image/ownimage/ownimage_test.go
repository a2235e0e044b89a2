package ownimage

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/u-root/u-root/pkg/cpio"
)

// archive is a newc archive of recs.
func archive(t *testing.T, recs ...cpio.Record) []byte {
	t.Helper()
	var b bytes.Buffer
	w := cpio.Newc.Writer(&b)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// unpack writes the regular files and links of the archive data under
// root, as the kernel unpacks an initramfs (device nodes left out).
func unpack(t *testing.T, data []byte, root string) {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		p := filepath.Join(root, r.Name)
		body, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		switch r.Mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			os.MkdirAll(p, 0o755)
		case cpio.S_IFREG:
			os.WriteFile(p, body, 0o644)
		case cpio.S_IFLNK:
			os.Symlink(string(body), p)
		}
	}
}

// records are the archive's records, without their places in it.
func records(t *testing.T, data []byte) []string {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		body, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		r.Ino = 0
		out = append(out, r.Info.String()+" "+string(body))
	}
	return out
}

func TestSealRebuild(t *testing.T) {
	big := strings.Repeat("the busybox ", 1000)
	built := archive(t,
		cpio.Directory("bbin", 0o755), cpio.Directory("etc", 0o755), cpio.Directory("etc/passeur", 0o755),
		cpio.Directory("tmp", 0o1777),
		cpio.StaticFile("bbin/bb", big, 0o755),
		cpio.StaticFile("etc/resolv.conf", "nameserver 8.8.8.8\n", 0o644),
		cpio.StaticFile("etc/localtime", "TZif2\x00\xf8\x00GMT0\n", 0o644), // not UTF-8
		cpio.StaticFile("etc/empty", "", 0o600),
		cpio.Symlink("init", "bbin/bb"),
		cpio.CharDev("dev/console", 0o600, 5, 1),
	)
	var sealed bytes.Buffer
	if err := Seal(bytes.NewReader(built), &sealed); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	unpack(t, sealed.Bytes(), root)
	// The rescue ran: a DHCP lease rewrote resolv.conf, a file was added.
	os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 10.0.2.3\n"), 0o644)
	os.WriteFile(filepath.Join(root, "tmp/run"), []byte("x"), 0o644)

	var again bytes.Buffer
	if err := Rebuild(root, &again); err != nil {
		t.Fatal(err)
	}
	want, got := records(t, sealed.Bytes()), records(t, again.Bytes())
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rebuilt:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for name, alter := range map[string]func(root string){
		"a file altered": func(root string) {
			os.WriteFile(filepath.Join(root, "bbin/bb"), []byte(strings.Replace(big, "busybox", "busyboy", 1)), 0o755)
		},
		"a file grown": func(root string) {
			os.WriteFile(filepath.Join(root, "bbin/bb"), []byte(big+"x"), 0o755)
		},
		"a link in a file's place": func(root string) {
			os.WriteFile(filepath.Join(root, "bb"), []byte(big), 0o755)
			os.Remove(filepath.Join(root, "bbin/bb"))
			os.Symlink("../bb", filepath.Join(root, "bbin/bb"))
		},
		"no manifest": func(root string) { os.Remove(filepath.Join(root, medialayout.InitramfsManifest)) },
		"a manifest out of the root": func(root string) {
			os.Remove(filepath.Join(root, "etc/passeur"))
			os.RemoveAll(filepath.Join(root, "etc/passeur"))
			os.Symlink("/", filepath.Join(root, "etc/passeur"))
		},
	} {
		root := t.TempDir()
		unpack(t, sealed.Bytes(), root)
		alter(root)
		var out bytes.Buffer
		if err := Rebuild(root, &out); err == nil {
			t.Errorf("%s: rebuilt", name)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	dir := cpio.Directory("etc/passeur", 0o755)
	hard := cpio.StaticFile("bin/x", "x", 0o755)
	hard.NLink = 2
	for name, recs := range map[string][]cpio.Record{
		"a hard link":        {dir, hard},
		"a name climbing":    {dir, cpio.StaticFile("../x", "a", 0o644)},
		"a manifest already": {dir, cpio.StaticFile(medialayout.InitramfsManifest, "{}", 0o644)},
		"a fifo":             {dir, {Info: cpio.Info{Name: "p", Mode: cpio.S_IFIFO | 0o644}}},
		"no folder for it":   {cpio.StaticFile("x", "a", 0o644)},
	} {
		var out bytes.Buffer
		if err := Seal(bytes.NewReader(archive(t, recs...)), &out); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	// A name twice (newc's writer drops the second: two writers).
	var twice bytes.Buffer
	cpio.WriteRecords(cpio.Newc.Writer(&twice), []cpio.Record{dir, cpio.StaticFile("x", "a", 0o644)})
	twice.Write(archive(t, cpio.StaticFile("x", "b", 0o644)))
	var out bytes.Buffer
	if err := Seal(bytes.NewReader(twice.Bytes()), &out); err == nil {
		t.Error("a name twice: sealed")
	}
}
