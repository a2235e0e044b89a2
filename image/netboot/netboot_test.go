package netboot

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

func TestScriptBase(t *testing.T) {
	b := Bundle{BoardCmdline: "console=ttyS0", Keys: map[string]string{"mode": "install"}, Base: "http://10.0.2.100"}
	s, err := b.Script()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kernel http://10.0.2.100/vmlinuz initrd=initramfs.cpio.zst console=ttyS0 passeur.mode=install\n", "initrd http://10.0.2.100/initramfs.cpio.zst\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	for _, bad := range []string{"tftp://10.0.2.2/", "10.0.2.100", "http://", "http://a b/"} {
		b.Base = bad
		if _, err := b.Script(); err == nil {
			t.Errorf("base %q accepted", bad)
		}
	}
}

func TestServer(t *testing.T) {
	bundle, repo := t.TempDir(), t.TempDir()
	for _, f := range []string{ScriptFile, KernelFile, InitramfsFile} {
		os.WriteFile(filepath.Join(bundle, f), []byte("file "+f), 0o644)
	}
	os.MkdirAll(filepath.Join(repo, "camrec/8.0.0"), 0o755)
	os.MkdirAll(filepath.Join(repo, "metadata"), 0o755)
	os.WriteFile(filepath.Join(repo, "metadata/timestamp.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(repo, "camrec/8.0.0/esp.img.zst"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(bundle), "secret"), []byte("no"), 0o644)
	var lines []string
	s := &Server{Bundle: bundle, Repo: repo, Log: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func(p, rng string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for _, c := range []struct {
		path, rng string
		code      int
		body      string
	}{
		{"/boot.ipxe", "", 200, "file boot.ipxe"},
		{"/vmlinuz", "", 200, "file vmlinuz"},
		{"/repo/metadata/timestamp.json", "", 200, "{}"},
		{"/repo/camrec/8.0.0/esp.img.zst", "bytes=4-", 206, "456789"},
		{"/repo/camrec/", "", 404, ""},
		{"/../secret", "", 404, ""},
		{"/repo/../../secret", "", 404, ""},
		{"/camrec/8.0.0/esp.img.zst", "", 404, ""},
	} {
		code, body := get(c.path, c.rng)
		if code != c.code || c.code < 300 && body != c.body {
			t.Errorf("GET %s (%s): %d %q, want %d %q", c.path, c.rng, code, body, c.code, c.body)
		}
	}
	if len(lines) != 8 || !strings.Contains(lines[3], `/repo/camrec/8.0.0/esp.img.zst "bytes=4-" 206 6 bytes`) {
		t.Errorf("log:\n%s", strings.Join(lines, "\n"))
	}
	if err := (&Server{Bundle: repo}).Check(); err == nil {
		t.Error("a folder without a bundle passed the check")
	}
}

// TestScriptRefusesUnsafeBytes: no byte iPXE reads as syntax (a command
// end, a comment, a chain, an expansion, a quote) reaches the script
// from a value, a key, the board's command line or the base URL.
func TestScriptRefusesUnsafeBytes(t *testing.T) {
	dangerous := []string{"\r", "\v", "\f", "\n", "\t", " ", "\x00", "\x7f", "\xc3\xa9", ";", "||", "&&", "#", "$", "${net0/ip}",
		"{", "}", "\"", "'", "\\", "`", "<", ">", "*", "?", "!", "(", ")"}
	for _, d := range dangerous {
		for name, b := range map[string]Bundle{
			"repo value":   {BoardCmdline: "console=ttyS0", Keys: map[string]string{"mode": "install", "repo": "http://10.0.2.100/r" + d + "shell"}},
			"target value": {BoardCmdline: "console=ttyS0", Keys: map[string]string{"mode": "install", "target": "SER" + d + "IAL"}},
			"key":          {BoardCmdline: "console=ttyS0", Keys: map[string]string{"mode" + d + "x": "install"}},
			"board":        {BoardCmdline: "console=ttyS0" + d + "shell", Keys: map[string]string{"mode": "install"}},
			"base":         {BoardCmdline: "console=ttyS0", Keys: map[string]string{"mode": "install"}, Base: "http://10.0.2.100/b" + d + "shell/"},
		} {
			if name == "board" && d == " " {
				continue // the board's words are separated by spaces
			}
			if s, err := b.Script(); !errors.Is(err, ErrUnsafeChar) {
				t.Errorf("%s with %q: %v, want ErrUnsafeChar; script:\n%s", name, d, err, s)
			}
		}
	}
	b := Bundle{BoardCmdline: "console=ttyS0,115200 panic=-1", Base: "http://[fd00::1]:8080/lab/",
		Keys: map[string]string{"mode": "install", "repo": "http://user@[fd00::1]:8080/camrec%20repo", "target": "WD-WX1+2_3.4", "format-data": "SER1,SER2"}}
	if _, err := b.Script(); err != nil {
		t.Errorf("safe values refused: %v", err)
	}
}
