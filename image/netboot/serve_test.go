package netboot

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lab is a bundle and a repository beside a secret the server must never
// hand out, served by s.HTTPServer on loopback.
func lab(t *testing.T, s *Server) (addr, outside string) {
	t.Helper()
	top := t.TempDir()
	s.Bundle, s.Repo, outside = filepath.Join(top, "bundle"), filepath.Join(top, "repo"), filepath.Join(top, "outside")
	for _, d := range []string{s.Bundle, filepath.Join(s.Repo, "camrec/8.0.0"), outside} {
		os.MkdirAll(d, 0o755)
	}
	for _, f := range []string{ScriptFile, KernelFile, InitramfsFile} {
		os.WriteFile(filepath.Join(s.Bundle, f), []byte("file "+f), 0o644)
	}
	os.MkdirAll(filepath.Join(s.Repo, "metadata"), 0o755)
	os.WriteFile(filepath.Join(s.Repo, "metadata/timestamp.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(s.Repo, "camrec/8.0.0/esp.img.zst"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String(), outside
}

// TestServerStaysInItsFolders: ".." and symbolic links leading out of the
// bundle or the repository, and files that are not regular, get 404; a
// link within the folder is followed.
func TestServerStaysInItsFolders(t *testing.T) {
	s := &Server{}
	addr, outside := lab(t, s)
	links := map[string]string{
		filepath.Join(s.Repo, "leak"):                "../outside/secret",
		filepath.Join(s.Repo, "camrec/abs"):          filepath.Join(outside, "secret"),
		filepath.Join(s.Repo, "camrec/out"):          outside,
		filepath.Join(s.Bundle, "etc"):               "/etc/passwd",
		filepath.Join(s.Repo, "camrec/stable"):       "8.0.0",
		filepath.Join(s.Repo, "camrec/8.0.0/latest"): "esp.img.zst",
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(s.Repo, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/repo/leak":                        "",
		"/repo/camrec/abs":                  "",
		"/repo/camrec/out/secret":           "",
		"/etc":                              "",
		"/../outside/secret":                "",
		"/repo/../outside/secret":           "",
		"/repo/camrec/../../outside/secret": "",
		"/repo/%2e%2e/outside/secret":       "",
		"/repo/fifo":                        "",
		"/repo/camrec":                      "",
		"/repo/":                            "",
		"/repo/camrec/stable/esp.img.zst":   "0123456789",
		"/repo/camrec/8.0.0/latest":         "0123456789",
	} {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want == "" && (res.StatusCode != http.StatusNotFound || strings.Contains(string(body), "secret")) || want != "" && string(body) != want {
			t.Errorf("GET %s: %d %q, want %q", path, res.StatusCode, body, want)
		}
	}
}

// raw sends req on a new connection and returns the connection's reader.
func raw(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, req)
	return c, bufio.NewReader(c)
}

// closedWithin reads c until the server closes it, failing if that takes
// longer than d.
func closedWithin(t *testing.T, what string, r io.Reader, d time.Duration) {
	t.Helper()
	start := time.Now()
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if took := time.Since(start); errors.As(err, &ne) && ne.Timeout() || took > d {
		t.Errorf("%s: connection still open after %s (%v)", what, took.Round(time.Millisecond), err)
	}
}

// TestServerTimeouts: a client that sends its header slowly, sends a body
// nobody reads, or stops reading a response is dropped after Stall; one
// that reads slowly but steadily gets the whole file however long it
// takes; an oversized header is refused.
func TestServerTimeouts(t *testing.T) {
	const stall = 300 * time.Millisecond
	done := make(chan string, 10)
	s := &Server{Stall: stall, Log: func(f string, a ...any) { done <- f }}
	addr, _ := lab(t, s)
	big := filepath.Join(s.Repo, "camrec/8.0.0/root.img.zst")
	if err := os.WriteFile(big, nil, 0o644); err != nil || os.Truncate(big, 64<<20) != nil {
		t.Fatal(err)
	}

	_, r := raw(t, addr, "GET /boot.ipxe HTTP/1.1\r\nHost: lab\r\n")
	closedWithin(t, "a header never finished", r, 3*time.Second)

	_, r = raw(t, addr, "GET /boot.ipxe HTTP/1.1\r\nHost: lab\r\nContent-Length: 100\r\n\r\nx")
	if res, err := http.ReadResponse(r, nil); err != nil || res.StatusCode != http.StatusBadRequest {
		t.Errorf("a request with a body: %v %v", res, err)
	}
	closedWithin(t, "a body never finished", r, 3*time.Second)
	<-done

	_, r = raw(t, addr, "GET /boot.ipxe HTTP/1.1\r\nHost: lab\r\nX-Big: "+strings.Repeat("x", 64<<10)+"\r\n\r\n")
	if res, err := http.ReadResponse(r, nil); err != nil || res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB header: %v %v", res, err)
	}

	_, r = raw(t, addr, "GET /repo/camrec/8.0.0/root.img.zst HTTP/1.1\r\nHost: lab\r\n\r\n")
	if _, err := http.ReadResponse(r, nil); err != nil {
		t.Fatal(err)
	}
	select { // the client reads nothing more
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("a client that stopped reading still holds its response after 5 s")
	}

	res, err := http.Get("http://" + addr + "/repo/camrec/8.0.0/root.img.zst")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	start, n := time.Now(), int64(0)
	for {
		m, err := io.CopyN(io.Discard, res.Body, 4<<20)
		n += m
		if err != nil {
			break
		}
		time.Sleep(stall / 3)
	}
	if took := time.Since(start); n != 64<<20 || took < 2*stall {
		t.Errorf("a slow reader got %d of %d bytes in %s", n, 64<<20, took)
	}
}

// TestServerHandsTheFleetItsPaths: /fleet and every path under it go to
// the Fleet handler, POST and body included; every other path is served
// as before, and with no Fleet /fleet is not found.
func TestServerHandsTheFleetItsPaths(t *testing.T) {
	s := &Server{Fleet: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "fleet "+r.Method+" "+r.URL.Path+" "+string(body))
	})}
	addr, _ := lab(t, s)
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/fleet/report", "{}", "fleet POST /fleet/report {}"},
		{"GET", "/fleet", "", "fleet GET /fleet "},
		{"GET", "/fleet/status.json", "", "fleet GET /fleet/status.json "},
		{"GET", "/fleetx", "", "404 page not found\n"},
		{"GET", "/boot.ipxe", "", "file boot.ipxe"},
	} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, strings.NewReader(c.body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(body) != c.want {
			t.Errorf("%s %s: %q, want %q", c.method, c.path, body, c.want)
		}
	}
	bare, _ := lab(t, &Server{})
	if res, err := http.Get("http://" + bare + "/fleet"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /fleet with no fleet: %v %v", res, err)
	}
}

// TestServerRepositoryAlone: a mirror is served without a netboot bundle;
// nothing but the repository is.
func TestServerRepositoryAlone(t *testing.T) {
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "metadata"), 0o755)
	os.WriteFile(filepath.Join(repo, "metadata/timestamp.json"), []byte("{}"), 0o644)
	s := &Server{Repo: repo}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.HTTPServer().Handler)
	defer srv.Close()
	for path, want := range map[string]int{"/repo/metadata/timestamp.json": 200, "/boot.ipxe": 404, "/vmlinuz": 404} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
	if err := (&Server{}).Check(); err == nil {
		t.Error("a server with nothing to serve: want a refusal")
	}
}
