package netboot

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"
)

// RepoPath is where Server serves the repository folder.
const RepoPath = "/repo/"

// FleetPath is where Server hands requests to its Fleet handler.
const FleetPath = "/fleet"

// Server serves a lab bench over HTTP: the bundle's files at the root
// (/boot.ipxe, /vmlinuz, /initramfs.cpio.zst) and a repository folder
// (image/repo's layout) under /repo/. Files are served with Range support,
// which the rescue system's downloads resume with; folders are not listed.
// Only regular files inside the two folders are served: a path is opened
// within its folder (os.Root), so neither ".." nor a symbolic link leads
// out of it.
type Server struct {
	Bundle, Repo string
	// Fleet, when set, serves FleetPath and every path under it: the
	// boxes' reports and the fleet page (image/fleet).
	Fleet http.Handler
	// Log, when set, receives one line per request.
	Log func(format string, args ...any)
	// Stall drops a client that takes this long to send its request
	// header, or to take the next bytes of a response (default 30 s).
	Stall time.Duration
}

// maxHeaderBytes bounds a request's header: the server's clients ask for
// a file, and a range of it.
const maxHeaderBytes = 16 << 10

// HTTPServer is an http.Server for s, its every wait bounded by s.Stall.
// It has no WriteTimeout, a deadline on the whole response that a large
// artifact on a slow link would miss; instead each write of a response
// must go through within Stall (statusWriter).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.stall(),
		IdleTimeout:       2 * s.stall(),
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

func (s *Server) stall() time.Duration {
	if s.Stall <= 0 {
		return 30 * time.Second
	}
	return s.Stall
}

// Check tells whether the folders hold what a lab boots from. A server
// may serve a repository (a mirror) or a bundle alone.
func (s *Server) Check() error {
	if s.Bundle == "" && s.Repo == "" {
		return errors.New("nothing to serve: give a netboot bundle, a repository, or both")
	}
	for _, f := range []string{ScriptFile, KernelFile, InitramfsFile} {
		if s.Bundle == "" {
			break
		}
		if err := servable(s.Bundle, f); err != nil {
			return fmt.Errorf("netboot bundle %s: %w (passeur netboot -dir writes one)", s.Bundle, err)
		}
	}
	if s.Repo != "" {
		if err := servable(s.Repo, "metadata/timestamp.json"); err != nil {
			return fmt.Errorf("repository %s: %w (passeur repo init makes one)", s.Repo, err)
		}
	}
	return nil
}

// servable tells whether the server would hand out name in dir.
func servable(dir, name string) error {
	f, err := open(dir, name)
	if err != nil {
		return err
	}
	return f.Close()
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK, rc: http.NewResponseController(w), stall: s.stall()}
	rec.extend()
	s.serve(rec, r)
	if s.Log != nil {
		s.Log("%s %s %s %q %d %d bytes %.1f s", r.RemoteAddr, r.Method, r.URL.Path, r.Header.Get("Range"), rec.status, rec.bytes, time.Since(start).Seconds())
	}
}

func (s *Server) serve(w *statusWriter, r *http.Request) {
	if s.Fleet != nil && (r.URL.Path == FleetPath || strings.HasPrefix(r.URL.Path, FleetPath+"/")) {
		s.Fleet.ServeHTTP(w, r)
		return
	}
	if r.ContentLength != 0 {
		// Nothing here reads a body, but the server drains one after the
		// response: it gets Stall, not forever.
		w.rc.SetReadDeadline(time.Now().Add(w.stall))
		w.Header().Set("Connection", "close")
		http.Error(w, "a request for a file has no body", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	dir, name := s.Bundle, strings.TrimPrefix(r.URL.Path, "/")
	if rest, ok := strings.CutPrefix(r.URL.Path, RepoPath); ok && s.Repo != "" {
		dir, name = s.Repo, rest
	} else if strings.Contains(name, "/") || s.Bundle == "" {
		http.NotFound(w, r)
		return
	}
	f, err := open(dir, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, st.Name(), st.ModTime(), f)
}

// open opens the regular file name inside dir: a name that is not a clean
// relative path, or that leads out of dir by a symbolic link, is refused
// by os.Root, and anything but a regular file (a folder, a FIFO that would
// block the open, a device) is not opened.
func open(dir, name string) (*os.File, error) {
	if !fs.ValidPath(name) || name == "." {
		return nil, fmt.Errorf("%q: %w", name, fs.ErrInvalid)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if st, err := root.Stat(name); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s in %s: not a regular file", name, dir)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	// Checked again on what was opened: the name may have changed between.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s in %s: not a regular file", name, dir)
	}
	return f, nil
}

// statusWriter remembers a response's status and size for the log, and
// gives each write Stall to go through: a client that stops reading is
// dropped, one that reads slowly is served as long as it takes.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	rc     *http.ResponseController
	stall  time.Duration
}

func (w *statusWriter) extend() { w.rc.SetWriteDeadline(time.Now().Add(w.stall)) }

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func (w *statusWriter) Write(p []byte) (int, error) {
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
