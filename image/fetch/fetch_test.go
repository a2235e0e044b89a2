package fetch

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// server serves content; the first `drops` requests are cut after cut
// bytes, as a dropped connection.
func server(t *testing.T, content []byte, drops int, cut int) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		n := len(ranges)
		mu.Unlock()
		if n <= drops {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.WriteHeader(http.StatusOK)
			w.Write(content[:cut])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "root.img.zst", time.Time{}, bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	return srv, &ranges
}

func TestResumeAfterDroppedConnection(t *testing.T) {
	content := make([]byte, 3<<20+77)
	rand.New(rand.NewSource(1)).Read(content)
	srv, ranges := server(t, content, 1, 1<<20)
	dst := filepath.Join(t.TempDir(), "root.img.zst")
	r, err := File(context.Background(), srv.URL+"/root.img.zst", dst, Options{Backoff: time.Millisecond, Size: int64(len(content))})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, content) {
		t.Fatalf("downloaded %d bytes, not the file", len(got))
	}
	if r.Attempts != 2 || r.Resumed != 1 || len(*ranges) != 2 || (*ranges)[1] != "bytes=1048576-" {
		t.Errorf("result %+v, ranges asked %q", r, *ranges)
	}
	if _, err := os.Stat(dst + ".part"); err == nil {
		t.Error(".part left behind")
	}
}

func TestGivesUpAndKeepsThePart(t *testing.T) {
	content := make([]byte, 2<<20)
	srv, _ := server(t, content, 100, 4096)
	dst := filepath.Join(t.TempDir(), "esp.img.zst")
	r, err := File(context.Background(), srv.URL+"/esp.img.zst", dst, Options{Attempts: 3, Backoff: time.Millisecond, Size: int64(len(content))})
	if !errors.Is(err, ErrGaveUp) || !errors.Is(err, ErrShort) || r.Attempts != 3 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("an incomplete file under its final name")
	}
	if st, err := os.Stat(dst + ".part"); err != nil || st.Size() == 0 {
		t.Errorf("the partial download is not kept for the next run: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	content := []byte("0123456789")
	srv, _ := server(t, content, 0, 0)
	dir := t.TempDir()
	if _, err := File(context.Background(), srv.URL+"/x", filepath.Join(dir, "x"), Options{Size: 11}); !errors.Is(err, ErrSize) {
		t.Errorf("wrong size: %v", err)
	}
	nf := httptest.NewServer(http.NotFoundHandler())
	defer nf.Close()
	if _, err := File(context.Background(), nf.URL+"/y", filepath.Join(dir, "y"), Options{}); !errors.Is(err, ErrStatus) {
		t.Errorf("404: %v", err)
	}
}

// TestStalledServer: the first response stops after 1 MiB without closing
// the connection; the attempt ends after Stall and the next one resumes.
func TestStalledServer(t *testing.T) {
	content := make([]byte, 2<<20)
	rand.New(rand.NewSource(2)).Read(content)
	release := make(chan struct{})
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.Write(content[:1<<20])
			w.(http.Flusher).Flush()
			<-release // hangs, connection open
			return
		}
		http.ServeContent(w, r, "esp.img.zst", time.Time{}, bytes.NewReader(content))
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handler
	dst := filepath.Join(t.TempDir(), "esp.img.zst")
	var logged []string
	r, err := File(context.Background(), srv.URL+"/esp.img.zst", dst, Options{Backoff: time.Millisecond, Stall: 200 * time.Millisecond, Size: int64(len(content)),
		Log: func(f string, a ...any) { logged = append(logged, f) }})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) || r.Resumed != 1 || ranges[1] != "bytes=1048576-" {
		t.Errorf("result %+v, ranges %q", r, ranges)
	}
	if len(logged) != 1 {
		t.Errorf("retries logged: %q", logged)
	}
}

// FuzzContentRange: a server's Content-Range never panics the parser, and
// one it accepts is a range inside the file.
func FuzzContentRange(f *testing.F) {
	for _, h := range []string{"bytes 1048576-2097151/2097152", "bytes 0-0/1", "bytes 5-10/-1", "bytes */2097152", "bytes 4-9/10"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, size, ok := contentRange(h)
		if ok && (start < 0 || start >= size) {
			t.Fatalf("%q: start %d of %d bytes", h, start, size)
		}
	})
}
