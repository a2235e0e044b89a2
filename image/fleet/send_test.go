package fleet

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
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
