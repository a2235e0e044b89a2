package netboot

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RepoPath is where Server serves the repository folder.
const RepoPath = "/repo/"

// Server serves a lab bench over HTTP: the bundle's files at the root
// (/boot.ipxe, /vmlinuz, /initramfs.cpio.zst) and a repository folder
// (image/repo's layout) under /repo/. Files are served with Range support,
// which the rescue system's downloads resume with; folders are not listed.
type Server struct {
	Bundle, Repo string
	// Log, when set, receives one line per request.
	Log func(format string, args ...any)
}

// Check tells whether the folders hold what a lab boots from.
func (s *Server) Check() error {
	for _, f := range []string{ScriptFile, KernelFile, InitramfsFile} {
		if _, err := os.Stat(filepath.Join(s.Bundle, f)); err != nil {
			return fmt.Errorf("netboot bundle %s: %w (passeur netboot -dir writes one)", s.Bundle, err)
		}
	}
	if s.Repo != "" {
		if _, err := os.Stat(filepath.Join(s.Repo, "index.json")); err != nil {
			return fmt.Errorf("repository %s: %w (passeur release publish makes one)", s.Repo, err)
		}
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.serve(rec, r)
	if s.Log != nil {
		s.Log("%s %s %s %q %d %d bytes %.1f s", r.RemoteAddr, r.Method, r.URL.Path, r.Header.Get("Range"), rec.status, rec.bytes, time.Since(start).Seconds())
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	dir, name := s.Bundle, strings.TrimPrefix(r.URL.Path, "/")
	if rest, ok := strings.CutPrefix(r.URL.Path, RepoPath); ok && s.Repo != "" {
		dir, name = s.Repo, rest
	} else if strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	// http.Dir refuses ".." and serves the files with Range; a folder is
	// not listed.
	f, err := http.Dir(dir).Open("/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

// statusWriter remembers a response's status and size for the log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func (w *statusWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
