package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// initramfs is a zstd-compressed newc archive of recs, then tail.
func initramfs(t *testing.T, recs []cpio.Record, tail []byte) []byte {
	t.Helper()
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	raw.Write(tail)
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	zw.Write(raw.Bytes())
	zw.Close()
	return out.Bytes()
}

// TestSameAsRunning: the staged initramfs is laid on the ESP only when it
// unpacks to what the rescue runs from.
func TestSameAsRunning(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bbin"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "bbin/bb"), []byte("the busybox"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 10.0.2.3\n"), 0o644)
	os.Symlink("bbin/bb", filepath.Join(root, "init"))
	good := []cpio.Record{
		cpio.Directory("bbin", 0o755), cpio.Directory("etc", 0o755),
		cpio.StaticFile("bbin/bb", "the busybox", 0o755),
		cpio.StaticFile("etc/resolv.conf", "", 0o644), // a DHCP lease rewrote it
		cpio.Symlink("init", "bbin/bb"),
		cpio.CharDev("dev/console", 0o600, 5, 1),
	}
	if err := sameAsRunning(initramfs(t, good, nil), root); err != nil {
		t.Errorf("the running image: %v", err)
	}
	if err := sameAsRunning(initramfs(t, good, make([]byte, 512)), root); err != nil {
		t.Errorf("padded with zeros: %v", err)
	}
	for name, c := range map[string]struct {
		recs []cpio.Record
		tail []byte
		want string
	}{
		"a file altered":   {append(good[:2:2], cpio.StaticFile("bbin/bb", "the busyboy", 0o755)), nil, "differs"},
		"a file added":     {append(good[:2:2], cpio.StaticFile("bbin/evil", "x", 0o755)), nil, "differs"},
		"a link elsewhere": {append(good[:2:2], cpio.Symlink("init", "bbin/evil")), nil, "links elsewhere"},
		"an archive after": {good, initramfsRaw(t, []cpio.Record{cpio.StaticFile("bbin/bb", "evil", 0o755)}), "follows"},
		"nothing":          {nil, nil, "no file"},
	} {
		if err := sameAsRunning(initramfs(t, c.recs, c.tail), root); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if err := sameAsRunning([]byte("not zstd"), root); err == nil {
		t.Error("not zstd: taken")
	}
}

// initramfsRaw is an uncompressed newc archive of recs.
func initramfsRaw(t *testing.T, recs []cpio.Record) []byte {
	var raw bytes.Buffer
	w := cpio.Newc.Writer(&raw)
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	cpio.WriteTrailer(w)
	return raw.Bytes()
}
