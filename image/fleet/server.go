package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/passeur/passeur/image/digest"
	"github.com/passeur/passeur/image/fleet/wire"
)

// The paths the fleet is served under.
const (
	Path       = "/fleet"             // the fleet page
	ReportPath = "/fleet/report"      // POST: a box's report
	BackupPath = wire.BackupPath      // PUT BackupPath/RUN: a box's backup of a run
	StatusPath = "/fleet/status.json" // every account's rollout, as JSON
)

// bodyWait is how long a box has to send a report's body.
const bodyWait = 30 * time.Second

// Server serves the fleet: boxes' reports in, the page and the status out.
// Only a box's report is authenticated (by its token); the page and the
// status are for whoever reaches the server, as the repository it serves is.
type Server struct {
	Store *Store
	// Policies give each account's default and rollout; nil: none known,
	// the page shows the boxes only.
	Policies Policies
	// Text is the page's words (default English).
	Text *Text
	// Log, when set, receives one line per report stored.
	Log func(format string, args ...any)
	// Backups, when set, is the folder where the boxes' backups are kept
	// (BackupPath): BOX/RUN.tar, each uploaded by its box before its
	// first destructive write. Empty: the server keeps none (404).
	Backups string
	// uploads lets one backup upload through at a time: the limits of a
	// box's backups hold, and what an earlier upload left half-written
	// (a crash) is known stale.
	uploads sync.Mutex
	// OnHalt, when set with Policies, is called after a report is stored
	// whenever the rollout of its box's account default for its product is
	// halted (the mirror then makes boxes wait: mirror.Halt).
	OnHalt func(account, product string)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if run, ok := strings.CutPrefix(r.URL.Path, BackupPath+"/"); ok {
		s.backup(w, r, run)
		return
	}
	switch r.URL.Path {
	case ReportPath:
		s.report(w, r)
	case Path, Path + "/":
		if get(w, r) {
			s.page(w)
		}
	case StatusPath:
		if get(w, r) {
			s.status(w)
		}
	default:
		http.NotFound(w, r)
	}
}

// get refuses anything but GET and HEAD with no body.
func get(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		refuse(w, http.StatusMethodNotAllowed, errors.New("only GET and HEAD"))
		return false
	}
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
		refuse(w, http.StatusBadRequest, errors.New("a page is asked for without a body"))
		return false
	}
	return true
}

func refuse(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, err)
}

func (s *Server) text() *Text {
	if s.Text == nil {
		return &English
	}
	return s.Text
}

// backupWait bounds how long a backup's body may take.
const backupWait = 30 * time.Minute

// backup keeps a box's backup of run: a server that keeps none first
// (404), then its token (401), its name and body (400, 413, 415); written
// beside, synced, then renamed into place under the token's box, and
// answered with its size and SHA-256 (201).
func (s *Server) backup(w http.ResponseWriter, r *http.Request, run string) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		refuse(w, http.StatusMethodNotAllowed, errors.New("only PUT"))
		return
	}
	if s.Backups == "" {
		refuse(w, http.StatusNotFound, wire.ErrNoBackups)
		return
	}
	token, err := bearer(r.Header.Get("Authorization"))
	var box string
	if err == nil {
		box, err = s.Store.authenticate(token)
	}
	if errors.Is(err, ErrNoToken) || errors.Is(err, ErrBadToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="passeur fleet"`)
		refuse(w, http.StatusUnauthorized, err)
		return
	}
	if err == nil {
		err = wire.CheckBox(box)
	}
	if err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	if err := wire.CheckRun(run); err != nil {
		refuse(w, http.StatusBadRequest, err)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-tar" {
		refuse(w, http.StatusUnsupportedMediaType, fmt.Errorf("%w: Content-Type %q, not application/x-tar", ErrBadReport, r.Header.Get("Content-Type")))
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(backupWait))
	s.uploads.Lock()
	defer s.uploads.Unlock()
	dir := filepath.Join(s.Backups, box)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	final := filepath.Join(dir, run+".tar")
	stale, _ := filepath.Glob(filepath.Join(dir, ".upload-*"))
	for _, p := range stale { // no upload runs but this one
		os.Remove(p)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	if _, err := os.Lstat(final); err != nil && len(kept) >= MaxBackupsPerBox {
		refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: %s keeps %d backups already", ErrTooLarge, box, len(kept)))
		return
	}
	f, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	defer os.Remove(f.Name()) // gone once renamed; a refused upload leaves nothing
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), http.MaxBytesReader(w, r.Body, wire.MaxBackupBytes))
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: a backup of more than %d bytes", ErrTooLarge, wire.MaxBackupBytes))
		return
	case err != nil:
		refuse(w, http.StatusBadRequest, fmt.Errorf("%w: reading the backup: %v", ErrBadReport, err))
		return
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if had, err := digest.File(final); err == nil && had != sum {
		// A run's backup is what it is: the same again (a take-up after a
		// power cut) is fine, other bytes under its name are not.
		refuse(w, http.StatusConflict, fmt.Errorf("%w: %s, %s", wire.ErrBackupExists, box, run))
		return
	}
	if err := os.Rename(f.Name(), final); err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	if s.Log != nil {
		s.Log("fleet: %s (%s) uploaded its backup %s, %d bytes", box, r.RemoteAddr, run, n)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(wire.Stored{Bytes: n, SHA256: sum})
}

// MaxBackupsPerBox bounds the backups the server keeps of one box.
const MaxBackupsPerBox = 32

// report stores a box's report: its token first (401), then its body
// (400, 413, 415), then that it is the token's box (403).
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, http.StatusMethodNotAllowed, errors.New("only POST"))
		return
	}
	token, err := bearer(r.Header.Get("Authorization"))
	if err == nil {
		var box string
		if box, err = s.Store.authenticate(token); err == nil {
			s.receive(w, r, box, token)
			return
		}
	}
	if errors.Is(err, ErrNoToken) || errors.Is(err, ErrBadToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="passeur fleet"`)
		refuse(w, http.StatusUnauthorized, err)
		return
	}
	refuse(w, http.StatusInternalServerError, err)
}

// bearer is the token of an Authorization header.
func bearer(h string) (string, error) {
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	if token = strings.TrimSpace(token); token == "" {
		return "", ErrNoToken
	}
	return token, nil
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request, box, token string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		refuse(w, http.StatusUnsupportedMediaType, fmt.Errorf("%w: Content-Type %q, not application/json", ErrBadReport, r.Header.Get("Content-Type")))
		return
	}
	// The server waits for a request's header only; a report's body gets
	// bodyWait, not forever.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyWait))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxBodyBytes))
		return
	}
	if err != nil {
		refuse(w, http.StatusBadRequest, fmt.Errorf("%w: reading the body: %v", ErrBadReport, err))
		return
	}
	rep, err := Decode(body)
	if err != nil {
		refuse(w, http.StatusBadRequest, err)
		return
	}
	if rep.Box != box {
		refuse(w, http.StatusForbidden, fmt.Errorf("%w: %s, by the token of %s", ErrOtherBox, rep.Box, box))
		return
	}
	at := s.Store.now()
	if err := s.Store.record(token, rep, at); errors.Is(err, ErrBadToken) {
		refuse(w, http.StatusUnauthorized, err)
		return
	} else if err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	if s.Log != nil {
		s.Log("fleet: %s (%s) reports %s %s %s", box, r.RemoteAddr, rep.Product, rep.Version, rep.State)
	}
	if s.OnHalt != nil && s.Policies != nil {
		if b, err := s.Store.Box(box); err == nil {
			if halted, err := s.Store.Halted(s.Policies, b.Account, rep.Product); err == nil && halted {
				s.OnHalt(b.Account, rep.Product)
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Decode reads a report strictly: one JSON object of Report's fields and
// nothing after it, checked.
func Decode(body []byte) (Report, error) {
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return rep, fmt.Errorf("%w: %v", ErrBadReport, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rep, fmt.Errorf("%w: data after the report", ErrBadReport)
	}
	if string(rep.Health) == "null" {
		rep.Health = nil
	}
	return rep, rep.Check()
}

func (s *Server) page(w http.ResponseWriter) {
	boxes, err := s.Store.Boxes()
	if err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	now := s.Store.now()
	var page bytes.Buffer
	if err := render(&page, s.text(), boxes, Rollouts(boxes, s.Policies, now), now); err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Write(page.Bytes())
}

// Status is GET /fleet/status.json.
type Status struct {
	At       time.Time  `json:"at"` // the server's time
	Rollouts []Progress `json:"rollouts"`
}

func (s *Server) status(w http.ResponseWriter) {
	boxes, err := s.Store.Boxes()
	if err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	now := s.Store.now()
	st := Status{At: now.UTC(), Rollouts: Rollouts(boxes, s.Policies, now)}
	if st.Rollouts == nil {
		st.Rollouts = []Progress{}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		refuse(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(data, '\n'))
}
