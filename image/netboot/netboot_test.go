package netboot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "k"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(src, "i"), []byte("cpio"), 0o644)
	b := Bundle{Kernel: filepath.Join(src, "k"), Initramfs: filepath.Join(src, "i"), BoardCmdline: "console=ttyS0,115200",
		Keys: map[string]string{"mode": "install", "unattended": "yes", "repo": "http://10.0.2.100", "release": "stable"}}
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := Write(dir, b); err != nil {
		t.Fatal(err)
	}
	script, _ := os.ReadFile(filepath.Join(dir, ScriptFile))
	want := "kernel vmlinuz initrd=initramfs.cpio.zst console=ttyS0,115200 passeur.mode=install passeur.release=stable passeur.repo=http://10.0.2.100 passeur.unattended=yes\ninitrd initramfs.cpio.zst\nboot\n"
	if !strings.HasPrefix(string(script), "#!ipxe\n") || !strings.HasSuffix(string(script), want) {
		t.Errorf("script:\n%s", script)
	}
	if k, _ := os.ReadFile(filepath.Join(dir, KernelFile)); string(k) != "kernel" {
		t.Error("kernel not copied")
	}
	for _, bad := range []map[string]string{{"mode": "explode"}, {"colour": "blue"}, {"repo": "ftp://x"}, {"release": "a b"}} {
		b.Keys = bad
		if err := Write(t.TempDir(), b); err == nil {
			t.Errorf("keys %v accepted", bad)
		}
	}
}
