package tests

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/qemu"
	"github.com/u-root/mkuimage/cpio"
)

// TestInitramfsIsGoOnly opens the built initramfs and checks that every ELF
// file in it is a Go binary (go version -m recognises it), that /init is the
// passeur agent, and that every module named in modules.dep is shipped.
func TestInitramfsIsGoOnly(t *testing.T) {
	a := qemu.BuiltArtifacts(t, "qemu-x86_64")
	f, err := os.Open(a.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]cpio.Record{}
	for _, r := range recs {
		files[r.Name] = r
	}
	dir := t.TempDir()
	elves, modules := 0, 0
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(r.Name, ".ko") {
			modules++
			continue
		}
		if !bytes.HasPrefix(data, []byte("\x7fELF")) {
			continue
		}
		elves++
		p := filepath.Join(dir, strings.ReplaceAll(r.Name, "/", "_"))
		os.WriteFile(p, data, 0o755)
		out, err := exec.Command("go", "version", "-m", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "\tpath\t") {
			t.Errorf("%s is an ELF file that go version -m does not recognise: %v\n%s", r.Name, err, out)
		}
	}
	if elves == 0 {
		t.Fatal("no ELF file in the initramfs")
	}
	if init, ok := files["init"]; !ok || !strings.HasSuffix(readRecord(t, init), "passeur-agent") {
		t.Errorf("/init is not the passeur agent: %+v", init.Info)
	}
	for _, c := range []string{"bbin/gosh", "bbin/ls", "bbin/cat", "bbin/mount", "bbin/dmesg", "etc/passeur/board.json", "dev/console"} {
		if _, ok := files[c]; !ok {
			t.Errorf("%s missing from the initramfs", c)
		}
	}
	var dep string
	for name, r := range files {
		if strings.HasSuffix(name, "/modules.dep") {
			dep = readRecord(t, r)
			for _, line := range strings.Split(strings.TrimSpace(dep), "\n") {
				for _, m := range strings.Fields(strings.ReplaceAll(line, ":", " ")) {
					if _, ok := files[filepath.Join(filepath.Dir(name), m)]; !ok {
						t.Errorf("modules.dep names %s, not in the initramfs", m)
					}
				}
			}
		}
	}
	if dep == "" || modules == 0 {
		t.Errorf("no modules.dep (%d modules)", modules)
	}
	t.Logf("%d Go ELF binaries, %d kernel modules, %d records", elves, modules, len(recs))
}

func readRecord(t *testing.T, r cpio.Record) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
