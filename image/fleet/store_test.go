package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/repo"
)

// clock is the fleet's time in a test: the server's receipts and the
// page's "ago" read it.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// newStore is a fleet database in a temporary folder, on a test clock.
func newStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t0}
	s.now = c.now
	return s, c
}

func enroll(t *testing.T, s *Store, box, account, tag string) string {
	t.Helper()
	token, err := Enroll(s, box, account, tag)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// rep is a report of camrec.
func rep(box, version, state string) Report {
	return Report{Box: box, Product: "camrec", Version: version, State: state, At: time.Unix(0, 0).UTC()}
}

func health(ok bool) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"product":"camrec","version":"8.1.0","cameras":3,"segments_indexed":30,"segments_missing":%d,"volumes":["a","b"],"ok":%v}`, map[bool]int{true: 0, false: 2}[ok], ok))
}

// post sends body as a report with token through srv, and gives the
// answer's status and text.
func post(t *testing.T, srv http.Handler, token string, body []byte) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, ReportPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func send(t *testing.T, srv http.Handler, token string, r Report) {
	t.Helper()
	body, _ := json.Marshal(r)
	if code, text := post(t, srv, token, body); code != http.StatusNoContent {
		t.Fatalf("report %+v: %d %s", r, code, text)
	}
}

// TestEnrollStoresOnlyTheTokenHash: the token is given once; the file
// holds its SHA-256, never the token.
func TestEnrollStoresOnlyTheTokenHash(t *testing.T) {
	s, _ := newStore(t)
	token := enroll(t, s, "box-1", "acme", "test-8.1")
	if len(token) != 64 {
		t.Fatalf("token %q: want 64 hex digits", token)
	}
	b, err := s.Box("box-1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Account != "acme" || b.Tag != "test-8.1" || !b.Enrolled.Equal(t0) || b.TokenHash != tokenHash(token) || b.Last != nil {
		t.Fatalf("box %+v", b)
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(token)) {
		t.Fatal("the database holds the token itself")
	}
	if !bytes.Contains(data, []byte(tokenHash(token))) {
		t.Fatal("the database does not hold the token's hash")
	}
}

// TestEnrollAgainRotatesTheToken: the old token is refused, the new one
// taken; the box moves to its new account and keeps its reports and its
// first enrolment time.
func TestEnrollAgainRotatesTheToken(t *testing.T) {
	s, c := newStore(t)
	srv := &Server{Store: s}
	old := enroll(t, s, "box-1", "acme", "")
	send(t, srv, old, rep("box-1", "8.0.0", StateDone))
	c.t = t0.Add(time.Hour)
	token := enroll(t, s, "box-1", "beta", "pilot")
	if token == old {
		t.Fatal("the same token again")
	}
	body, _ := json.Marshal(rep("box-1", "8.1.0", StateDone))
	if code, text := post(t, srv, old, body); code != http.StatusUnauthorized || !strings.Contains(text, ErrBadToken.Error()) {
		t.Fatalf("old token: %d %s", code, text)
	}
	send(t, srv, token, rep("box-1", "8.1.0", StateDone))
	b, err := s.Box("box-1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Account != "beta" || b.Tag != "pilot" || !b.Enrolled.Equal(t0) || !b.TokenIssued.Equal(c.t) {
		t.Fatalf("box %+v", b)
	}
	if h, _ := s.History("box-1"); len(h) != 2 {
		t.Fatalf("history of %d reports, want 2", len(h))
	}
}

// TestEnrollRefusesBadNames: box IDs, accounts and tags are short safe
// words; nothing is stored for a refused one.
func TestEnrollRefusesBadNames(t *testing.T) {
	s, _ := newStore(t)
	for _, c := range []struct {
		box, account, tag string
		want              error
	}{
		{"", "acme", "", ErrBadBoxID},
		{"Box-1", "acme", "", ErrBadBoxID},
		{"-box", "acme", "", ErrBadBoxID},
		{"box/1", "acme", "", ErrBadBoxID},
		{"box 1", "acme", "", ErrBadBoxID},
		{strings.Repeat("b", 65), "acme", "", ErrBadBoxID},
		{"box-1", "", "", repo.ErrBadAccount},
		{"box-1", "Acme", "", repo.ErrBadAccount},
		{"box-1", "acme", "Test", repo.ErrBadTagName},
		{"box-1", "acme", "8.1", repo.ErrBadTagName},
	} {
		if _, err := Enroll(s, c.box, c.account, c.tag); !errors.Is(err, c.want) {
			t.Errorf("Enroll(%q, %q, %q): %v, want %v", c.box, c.account, c.tag, err, c.want)
		}
	}
	if _, err := Enroll(s, strings.Repeat("b", 64), "acme", "t.-_9"); err != nil {
		t.Errorf("longest box ID: %v", err)
	}
	boxes, err := s.Boxes()
	if err != nil || len(boxes) != 1 {
		t.Fatalf("%d boxes (%v), want the one well named", len(boxes), err)
	}
}

// TestStoreIsShared: a second Store on the same file, as passeur fleet
// enroll beside a running passeur serve, writes what the first then reads;
// what was written survives reopening.
func TestStoreIsShared(t *testing.T) {
	s, _ := newStore(t)
	cli, err := Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	token := enroll(t, cli, "box-1", "acme", "")
	send(t, &Server{Store: s}, token, rep("box-1", "8.0.0", StateDone))
	again, err := Open(s.path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := again.Box("box-1")
	if err != nil || b.Last == nil || b.Last.Version != "8.0.0" || b.Running == nil || b.Running.Version != "8.0.0" {
		t.Fatalf("box %+v (%v)", b, err)
	}
	if _, err := again.Box("box-2"); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("a box never enrolled: %v", err)
	}
}

// TestOpenRefusesAnotherFormat: a database of another format is not
// read as this one.
func TestOpenRefusesAnotherFormat(t *testing.T) {
	p := filepath.Join(t.TempDir(), "not-a-db")
	os.WriteFile(p, bytes.Repeat([]byte("x"), 8192), 0o600)
	if _, err := Open(p); err == nil {
		t.Fatal("a file that is no database opened")
	}
}

// TestHistoryKeepsTheNewest: a box's history holds its last History
// reports, oldest first; the box is last seen at the server's time of its
// newest.
func TestHistoryKeepsTheNewest(t *testing.T) {
	s, c := newStore(t)
	srv := &Server{Store: s}
	token := enroll(t, s, "box-1", "acme", "")
	const sent = History + 7
	for i := range sent {
		c.t = t0.Add(time.Duration(i) * time.Minute)
		r := rep("box-1", "8.0.0", StateStaged)
		r.Step = fmt.Sprint("report ", i)
		send(t, srv, token, r)
	}
	h, err := s.History("box-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != History {
		t.Fatalf("%d reports kept, want %d", len(h), History)
	}
	for i, r := range h {
		if want := fmt.Sprint("report ", sent-History+i); r.Step != want {
			t.Fatalf("report %d of the history is %q, want %q", i, r.Step, want)
		}
	}
	b, _ := s.Box("box-1")
	if b.Last == nil || b.Last.Step != fmt.Sprint("report ", sent-1) || !b.Seen.Equal(c.t) || !b.Last.Received.Equal(c.t) {
		t.Fatalf("last report %+v, seen %v", b.Last, b.Seen)
	}
	if b.Running != nil {
		t.Fatalf("running %+v, though no report was done", b.Running)
	}
}

// TestFailuresAreBounded: a box remembers a failure per version, the
// newest maxFailures.
func TestFailuresAreBounded(t *testing.T) {
	s, c := newStore(t)
	srv := &Server{Store: s}
	token := enroll(t, s, "box-1", "acme", "")
	for i := range maxFailures + 3 {
		c.t = t0.Add(time.Duration(i) * time.Minute)
		r := rep("box-1", fmt.Sprintf("8.%d.0", i), StateFailed)
		send(t, srv, token, r)
		send(t, srv, token, r) // the same version again: one failure, moved to now
	}
	b, _ := s.Box("box-1")
	if len(b.Failures) != maxFailures {
		t.Fatalf("%d failures kept, want %d", len(b.Failures), maxFailures)
	}
	if last := b.Failures[len(b.Failures)-1]; last.Version != fmt.Sprintf("8.%d.0", maxFailures+2) || !last.At.Equal(c.t) {
		t.Fatalf("newest failure %+v", last)
	}
}

// TestConcurrentReports: boxes reporting at once through a real server
// are each stored, none lost to another's transaction.
func TestConcurrentReports(t *testing.T) {
	s, _ := newStore(t)
	hs := httptest.NewServer(&Server{Store: s})
	defer hs.Close()
	const boxes, each = 6, 4
	tokens := make([]string, boxes)
	for i := range boxes {
		tokens[i] = enroll(t, s, fmt.Sprint("box-", i), "acme", "")
	}
	errs := make(chan error, boxes*each)
	for i := range boxes {
		go func() {
			for range each {
				errs <- Send(context.Background(), hs.URL+ReportPath, tokens[i], rep(fmt.Sprint("box-", i), "8.1.0", StateStaged))
			}
		}()
	}
	for range boxes * each {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range boxes {
		if h, err := s.History(fmt.Sprint("box-", i)); err != nil || len(h) != each {
			t.Fatalf("box-%d: %d reports (%v), want %d", i, len(h), err, each)
		}
	}
}
