package fleet

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReportRefusals: every refusal has its status and its named error,
// and stores nothing.
func TestReportRefusals(t *testing.T) {
	s, _ := newStore(t)
	srv := &Server{Store: s}
	token := enroll(t, s, "box-1", "acme", "")
	enroll(t, s, "box-2", "acme", "")
	good, _ := json.Marshal(rep("box-1", "8.1.0", StateDone))
	with := func(change func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		change(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, c := range []struct {
		name, auth, ctype, method string
		body                      []byte
		status                    int
		want                      string
	}{
		{name: "no token", body: good, status: 401, want: ErrNoToken.Error()},
		{name: "another scheme", auth: "Basic " + token, body: good, status: 401, want: ErrNoToken.Error()},
		{name: "empty bearer", auth: "Bearer ", body: good, status: 401, want: ErrNoToken.Error()},
		{name: "unknown token", auth: "Bearer " + strings.Repeat("ab", 32), body: good, status: 401, want: ErrBadToken.Error()},
		{name: "token not hex", auth: "Bearer " + strings.Repeat("zz", 32), body: good, status: 401, want: ErrBadToken.Error()},
		{name: "token cut", auth: "Bearer " + token[:63], body: good, status: 401, want: ErrBadToken.Error()},
		{name: "another box", body: with(func(m map[string]any) { m["box"] = "box-2" }), status: 403, want: ErrOtherBox.Error()},
		{name: "a box not enrolled", body: with(func(m map[string]any) { m["box"] = "box-9" }), status: 403, want: ErrOtherBox.Error()},
		{name: "GET", method: http.MethodGet, status: 405, want: "only POST"},
		{name: "not JSON", ctype: "text/plain", body: good, status: 415, want: ErrBadReport.Error()},
		{name: "broken JSON", body: []byte(`{"box":`), status: 400, want: ErrBadReport.Error()},
		{name: "unknown field", body: with(func(m map[string]any) { m["firmware"] = "x" }), status: 400, want: `unknown field "firmware"`},
		{name: "data after", body: append(append([]byte{}, good...), good...), status: 400, want: "data after the report"},
		{name: "an array", body: []byte(`[]`), status: 400, want: ErrBadReport.Error()},
		{name: "bad box ID", body: with(func(m map[string]any) { m["box"] = "Box 1" }), status: 400, want: ErrBadBoxID.Error()},
		{name: "no product", body: with(func(m map[string]any) { delete(m, "product") }), status: 400, want: "product"},
		{name: "bad version", body: with(func(m map[string]any) { m["version"] = "../8" }), status: 400, want: "version"},
		{name: "unknown state", body: with(func(m map[string]any) { m["state"] = "rebooting" }), status: 400, want: `state "rebooting"`},
		{name: "error when done", body: with(func(m map[string]any) { m["error"] = "x" }), status: 400, want: "only a failed run"},
		{name: "step with a newline", body: with(func(m map[string]any) { m["step"] = "write\nsystem" }), status: 400, want: "step"},
		{name: "health not an object", body: with(func(m map[string]any) { m["health"] = []int{1} }), status: 400, want: "health: not a JSON object"},
		{name: "health without verdict", body: with(func(m map[string]any) { m["health"] = map[string]any{"cameras": 3} }), status: 400, want: `no boolean "ok"`},
		{name: "health verdict not boolean", body: with(func(m map[string]any) { m["health"] = map[string]any{"ok": "yes"} }), status: 400, want: `no boolean "ok"`},
		{name: "at not a time", body: with(func(m map[string]any) { m["at"] = "yesterday" }), status: 400, want: ErrBadReport.Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, ReportPath, strings.NewReader(string(c.body)))
			req.Header.Set("Content-Type", "application/json")
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			switch {
			case c.auth != "":
				req.Header.Set("Authorization", c.auth)
			case c.name != "no token":
				req.Header.Set("Authorization", "Bearer "+token)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Fatalf("%d %q, want %d with %q", w.Code, w.Body.String(), c.status, c.want)
			}
			if c.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	for _, box := range []string{"box-1", "box-2"} {
		if h, _ := s.History(box); len(h) != 0 {
			t.Fatalf("%s: %d reports stored from refused requests", box, len(h))
		}
	}
}

// TestReportBounds: the body, the health report, the error and the step
// are held to their bounds; at the bound they are taken.
func TestReportBounds(t *testing.T) {
	s, _ := newStore(t)
	srv := &Server{Store: s}
	token := enroll(t, s, "box-1", "acme", "")
	padded := func(n int) json.RawMessage { // a health report of n bytes
		h := `{"ok":true,"note":""}`
		return json.RawMessage(`{"ok":true,"note":"` + strings.Repeat("x", n-len(h)) + `"}`)
	}
	for _, c := range []struct {
		name   string
		change func(r *Report)
		raw    []byte
		status int
		want   string
	}{
		{name: "health at its bound", change: func(r *Report) { r.Health = padded(MaxHealthBytes) }, status: 204},
		{name: "health over its bound", change: func(r *Report) { r.Health = padded(MaxHealthBytes + 1) }, status: 400, want: "health: 32769 bytes"},
		{name: "error at its bound", change: func(r *Report) { r.State, r.Error = StateFailed, strings.Repeat("e", MaxErrorBytes) }, status: 204},
		{name: "error over its bound", change: func(r *Report) { r.State, r.Error = StateFailed, strings.Repeat("e", MaxErrorBytes+1) }, status: 400, want: "error: at most"},
		{name: "step over its bound", change: func(r *Report) { r.Step = strings.Repeat("s", MaxStepBytes+1) }, status: 400, want: "step: at most"},
		{name: "body over its bound", raw: []byte(`{"box":"box-1","pad":"` + strings.Repeat(" ", MaxBodyBytes) + `"}`), status: 413, want: ErrTooLarge.Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := c.raw
			if body == nil {
				r := rep("box-1", "8.1.0", StateDone)
				c.change(&r)
				body, _ = json.Marshal(r)
			}
			if code, text := post(t, srv, token, body); code != c.status || !strings.Contains(text, c.want) {
				t.Fatalf("%d %q, want %d with %q", code, text, c.status, c.want)
			}
		})
	}
	if h, _ := s.History("box-1"); len(h) != 2 {
		t.Fatalf("%d reports stored, want the 2 at their bounds", len(h))
	}
}

// TestLastSeenIsTheServersTime: a box whose clock says 1970 is seen when
// the server received its report; its own time is kept beside.
func TestLastSeenIsTheServersTime(t *testing.T) {
	s, c := newStore(t)
	srv := &Server{Store: s}
	token := enroll(t, s, "box-1", "acme", "")
	c.t = t0.Add(90 * time.Minute)
	send(t, srv, token, rep("box-1", "8.1.0", StateDone))
	b, _ := s.Box("box-1")
	if !b.Seen.Equal(c.t) || !b.Last.Received.Equal(c.t) || !b.Last.At.Equal(time.Unix(0, 0)) {
		t.Fatalf("seen %v, received %v, box's time %v", b.Seen, b.Last.Received, b.Last.At)
	}
}

// TestStatusJSON: GET /fleet/status.json gives every account's rollout.
func TestStatusJSON(t *testing.T) {
	s, _ := newStore(t)
	srv := &Server{Store: s, Policies: policies(2)}
	tok := enroll(t, s, "box-1", "acme", "")
	enroll(t, s, "box-2", "acme", "")
	send(t, srv, tok, rep("box-1", "8.1.0", StateDone))
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, StatusPath, nil))
	var st Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != 200 {
		t.Fatalf("%d %s (%v)", w.Code, w.Body, err)
	}
	want := Progress{Account: "acme", Product: "camrec", Default: "8.1.0", Previous: "8.0.0", Done: 1, Total: 2, HaltFailures: 2}
	if len(st.Rollouts) != 1 {
		t.Fatalf("rollouts %+v", st.Rollouts)
	}
	got := st.Rollouts[0]
	got.Fraction = nil
	if got != want || !st.At.Equal(t0) {
		t.Fatalf("status %+v at %v, want %+v at %v", got, st.At, want, t0)
	}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, StatusPath, strings.NewReader("{}")))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST %s: %d", StatusPath, w.Code)
	}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, Path+"/other", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("GET %s/other: %d", Path, w.Code)
	}
}
