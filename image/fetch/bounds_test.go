package fetch

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// previous is what the destination held before each refused download.
const previous = "the file as it was"

// refused downloads url over a destination holding previous and checks
// the refusal is named, the destination unchanged, and, when the server
// sent too much, no partial file kept for a later run to take up.
func refused(t *testing.T, url string, o Options, want error) Result {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "file")
	os.WriteFile(dst, []byte(previous), 0o644)
	o.Backoff = time.Millisecond
	r, err := File(context.Background(), url, dst, o)
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", url, err, want)
	}
	if got, _ := os.ReadFile(dst); string(got) != previous {
		t.Errorf("%s: the destination holds %d bytes, not what it held", url, len(got))
	}
	if _, err := os.Stat(dst + ".part"); err == nil && errors.Is(want, ErrTooLarge) {
		t.Errorf("%s: a partial file of an oversized body is kept", url)
	}
	if st, err := os.Stat(dst + ".part"); err == nil && o.Size > 0 && st.Size() > o.Size {
		t.Errorf("%s: %d bytes written, past the declared %d", url, st.Size(), o.Size)
	}
	return r
}

// body serves n bytes: chunked (no Content-Length), or declaring length.
func body(n, length int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if length >= 0 {
			w.Header().Set("Content-Length", strconv.Itoa(length))
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // without a length, the body goes chunked
		w.Write(bytes.Repeat([]byte{'x'}, n))
	}
}

func serve(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestBodyStopsAtTheDeclaredSize: a chunked body longer than the signed
// size, by one byte or by a lot, is cut there and refused at once.
func TestBodyStopsAtTheDeclaredSize(t *testing.T) {
	const size = 100 << 10
	for _, extra := range []int{1, 8 << 20} {
		r := refused(t, serve(t, body(size+extra, -1)), Options{Size: size}, ErrTooLarge)
		if r.Attempts != 1 || r.Bytes > size {
			t.Errorf("%d bytes too many: %+v, want one attempt and at most %d bytes", extra, r, size)
		}
	}
}

// TestUnsignedFileBounded: a file of unknown size (index, manifest,
// signature) stops at MaxUnsigned, whether the body is chunked or
// declares its length; one of exactly MaxUnsigned bytes comes through.
func TestUnsignedFileBounded(t *testing.T) {
	refused(t, serve(t, body(MaxUnsigned+1, -1)), Options{}, ErrTooLarge)
	refused(t, serve(t, body(64<<20, 64<<20)), Options{}, ErrTooLarge)
	refused(t, serve(t, body(5000, -1)), Options{Limit: 4096}, ErrTooLarge)
	dst := filepath.Join(t.TempDir(), "index.json")
	r, err := File(context.Background(), serve(t, body(MaxUnsigned, -1)), dst, Options{})
	if st, _ := os.Stat(dst); err != nil || st == nil || st.Size() != MaxUnsigned {
		t.Errorf("a file of MaxUnsigned bytes: %+v, %v", r, err)
	}
}

// TestShortBody: a body that ends before the signed size, cleanly
// (chunked) or cut under a Content-Length that promised the whole file,
// is never renamed into place.
func TestShortBody(t *testing.T) {
	const size = 100 << 10
	refused(t, serve(t, body(size-10, -1)), Options{Size: size, Attempts: 2}, ErrShort)
	refused(t, serve(t, body(size-10, size)), Options{Size: size, Attempts: 2}, ErrShort)
	refused(t, serve(t, body(size-10, size-10)), Options{Size: size}, ErrSize)
}

// TestSlowHeader: a server that trickles its response header, a byte at
// a time, never reaching the body, costs Stall per attempt.
func TestSlowHeader(t *testing.T) {
	done := make(chan struct{})
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nX-Slow: ")
		for buf.Flush() == nil {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			buf.WriteString("x")
		}
	}))
	defer close(done)
	start := time.Now()
	r := refused(t, url, Options{Size: 10, Attempts: 2, Stall: 200 * time.Millisecond}, ErrStalled)
	if took := time.Since(start); r.Attempts != 2 || took > 5*time.Second {
		t.Errorf("%+v in %s", r, took)
	}
}

// TestRedirect: a redirect to another host is refused unless that host
// is named; one within the host is followed.
func TestRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		body(10, 10)(w, r)
	}))
	var own string
	own = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other+"/file", http.StatusFound)
		case "/moved":
			http.Redirect(w, r, own+"/file", http.StatusMovedPermanently)
		default:
			body(10, 10)(w, r)
		}
	}))
	refused(t, own+"/away", Options{Size: 10}, ErrRedirect)
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host was asked %d times", n)
	}
	dir := t.TempDir()
	if _, err := File(context.Background(), own+"/moved", filepath.Join(dir, "a"), Options{Size: 10}); err != nil {
		t.Errorf("redirect within the host: %v", err)
	}
	mirror := strings.TrimPrefix(other, "http://")
	if _, err := File(context.Background(), own+"/away", filepath.Join(dir, "b"), Options{Size: 10, RedirectHosts: []string{mirror}}); err != nil || elsewhere.Load() != 1 {
		t.Errorf("redirect to a named mirror: %v", err)
	}
}
