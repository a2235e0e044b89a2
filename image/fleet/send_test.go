package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/passeur/passeur/image/fleet/wire"
)

// TestSend: a box's report goes through; each refusal comes back as the
// server's named error; a malformed report is not sent; a redirect is
// followed on the same server only.
func TestSend(t *testing.T) {
	s, _ := newStore(t)
	var requests atomic.Int32
	fleet := &Server{Store: s}
	mux := http.NewServeMux()
	mux.Handle(Path+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		fleet.ServeHTTP(w, r)
	}))
	mux.Handle("/moved", http.RedirectHandler(ReportPath, http.StatusPermanentRedirect))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	mux.Handle("/away", http.RedirectHandler(other.URL+ReportPath, http.StatusPermanentRedirect))

	token := enroll(t, s, "box-1", "acme", "")
	enroll(t, s, "box-2", "acme", "")
	ctx := context.Background()
	if err := Send(ctx, hs.URL+ReportPath, token, rep("box-1", "8.1.0", StateDone)); err != nil {
		t.Fatal(err)
	}
	if err := Send(ctx, hs.URL+"/moved", token, rep("box-1", "8.1.0", StateDone)); err != nil {
		t.Fatalf("a redirect on the same server: %v", err)
	}
	for _, c := range []struct {
		name  string
		token string
		r     Report
		want  error
	}{
		{"unknown token", strings.Repeat("0", 64), rep("box-1", "8.1.0", StateDone), ErrBadToken},
		{"no token", "", rep("box-1", "8.1.0", StateDone), ErrNoToken},
		{"another box", token, rep("box-2", "8.1.0", StateDone), ErrOtherBox},
	} {
		if err := Send(ctx, hs.URL+ReportPath, c.token, c.r); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	before := requests.Load()
	if err := Send(ctx, hs.URL+ReportPath, token, rep("box-1", "8.1.0", "rebooting")); !errors.Is(err, ErrBadReport) {
		t.Errorf("a bad state: %v", err)
	}
	if requests.Load() != before {
		t.Error("a malformed report was sent")
	}
	if err := Send(ctx, hs.URL+"/away", token, rep("box-1", "8.1.0", StateDone)); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("a redirect to another server: %v", err)
	}
	if elsewhere.Load() != 0 {
		t.Error("the report went to another server")
	}
	if err := Send(ctx, "file:///etc/passwd", token, rep("box-1", "8.1.0", StateDone)); err == nil {
		t.Error("a file URL was taken")
	}
	if h, _ := s.History("box-1"); len(h) != 2 {
		t.Fatalf("%d reports stored, want 2", len(h))
	}
}

// TestSendBackup: a box's backup is kept under its box, whole, and the
// answer says what was stored; a server keeping none, a bad token, a bad
// run name and another content type are refused, and leave nothing.
func TestSendBackup(t *testing.T) {
	s, _ := newStore(t)
	backups := t.TempDir()
	fleet := &Server{Store: s, Backups: backups}
	hs := httptest.NewServer(fleet)
	defer hs.Close()
	token := enroll(t, s, "box-1", "acme", "")
	ctx := context.Background()
	body := strings.Repeat("the backup of box-1\n", 5000)
	got, err := wire.SendBackup(ctx, hs.URL+ReportPath, token, "2026-12-02T142443Z", strings.NewReader(body), int64(len(body)))
	sum := sha256.Sum256([]byte(body))
	if err != nil || got.Bytes != int64(len(body)) || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("upload: %+v %v", got, err)
	}
	if kept, err := os.ReadFile(filepath.Join(backups, "box-1", "2026-12-02T142443Z.tar")); err != nil || string(kept) != body {
		t.Errorf("the kept backup: %d bytes, %v", len(kept), err)
	}
	// The same again (a take-up) is fine; other bytes under its name not.
	if again, err := wire.SendBackup(ctx, hs.URL+ReportPath, token, "2026-12-02T142443Z", strings.NewReader(body), int64(len(body))); err != nil || again != got {
		t.Errorf("the same backup again: %+v %v", again, err)
	}
	if _, err := wire.SendBackup(ctx, hs.URL+ReportPath, token, "2026-12-02T142443Z", strings.NewReader("other"), 5); !errors.Is(err, wire.ErrBackupExists) {
		t.Errorf("another backup under the same run: %v, want refused", err)
	}
	// Refusals.
	if _, err := wire.SendBackup(ctx, hs.URL+ReportPath, "0123456789abcdef0123", "r1", strings.NewReader("x"), 1); !errors.Is(err, ErrBadToken) {
		t.Errorf("a bad token: %v, want ErrBadToken", err)
	}
	if _, err := wire.SendBackup(ctx, hs.URL+ReportPath, token, "../r1", strings.NewReader("x"), 1); !errors.Is(err, ErrBadReport) {
		t.Errorf("a run named ../r1: %v, want ErrBadReport", err)
	}
	req, _ := http.NewRequest(http.MethodPut, hs.URL+BackupPath+"/..%2Fr1", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-tar")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a run named ..%%2Fr1 sent as is: %s, want 400", resp.Status)
	}
	req, _ = http.NewRequest(http.MethodPut, hs.URL+BackupPath+"/r2", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("a JSON body: %s, want 415", resp.Status)
	}
	none := httptest.NewServer(&Server{Store: s})
	defer none.Close()
	if _, err := wire.SendBackup(ctx, none.URL+ReportPath, token, "r3", strings.NewReader("x"), 1); !errors.Is(err, wire.ErrNoBackups) {
		t.Errorf("a server keeping no backups: %v, want ErrNoBackups", err)
	}
	entries, _ := os.ReadDir(filepath.Join(backups, "box-1"))
	if len(entries) != 1 {
		t.Errorf("the box's backups folder holds %d entries, want the one backup", len(entries))
	}
}
