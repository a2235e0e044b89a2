// Package wire is what a box and its fleet server say to each other: the
// report a box sends after a run (Report, checked and bounded as the
// server will), the errors the server answers with, and Send, which a box
// posts it with. It is a leaf of image/fleet so that a box links it
// without the server's store and page.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
)

// States a report gives of a box's last run.
const (
	StateStaged    = "staged"    // the release is on the box, not yet applied
	StateApplying  = "applying"  // the rescue is writing it
	StateMigrating = "migrating" // the new system is taking over (first boot)
	StateDone      = "done"      // the new system runs; Health says how well
	StateFailed    = "failed"    // the run stopped: Step and Error say where and why
)

var states = []string{StateStaged, StateApplying, StateMigrating, StateDone, StateFailed}

// Bounds of what a box sends and what the server keeps of it.
const (
	MaxBodyBytes   = 64 << 10 // a report's request body
	MaxHealthBytes = 32 << 10 // its health report
	MaxErrorBytes  = 2 << 10  // its error
	MaxStepBytes   = 128      // its step's name
	// History is how many reports the server keeps per box, the newest.
	History = 20
)

// Errors a caller may branch on. The server answers each refusal with its
// status and the error's text; Send gives back the same error.
var (
	ErrBadBoxID    = errors.New("bad box ID")
	ErrNotEnrolled = errors.New("box not enrolled")
	ErrNoToken     = errors.New("no bearer token")                             // 401
	ErrBadToken    = errors.New("token not enrolled")                          // 401
	ErrOtherBox    = errors.New("the report names another box than its token") // 403
	ErrBadReport   = errors.New("malformed report")                            // 400
	ErrTooLarge    = errors.New("report too large")                            // 413
	ErrFull        = errors.New("the fleet holds as many boxes as it may")
)

var boxRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CheckBox refuses a box ID that is not [a-z0-9] then up to 63 of
// [a-z0-9._-]: it is a database key, a URL-safe word and an HTML attribute.
func CheckBox(id string) error {
	if !boxRe.MatchString(id) {
		return fmt.Errorf("%w %q: [a-z0-9] then up to 63 of [a-z0-9._-]", ErrBadBoxID, id)
	}
	return nil
}

// Report is what a box says of its last run, as JSON in the body of
// POST /fleet/report.
type Report struct {
	Box     string `json:"box"`
	Product string `json:"product"`
	// Version is the version the run is about: the one the box now runs
	// (done), or the one it is moving to (staged, applying, migrating,
	// failed).
	Version string `json:"version"`
	State   string `json:"state"`
	// Step is the journal's step the run is at, or failed at.
	Step string `json:"step,omitempty"`
	// Error is why a failed run stopped; only with StateFailed.
	Error string `json:"error,omitempty"`
	// Health is the new system's health report, a JSON object whose
	// boolean "ok" is its verdict (release.Layout.Health).
	Health json.RawMessage `json:"health,omitempty"`
	// At is the box's clock when it sent the report: shown, never used to
	// order reports or tell when the box was last seen (a box may have no
	// battery clock).
	At time.Time `json:"at,omitzero"`
}

// Check refuses a report the server would not store, each field held to
// its form and bounds.
func (r *Report) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadReport, fmt.Sprintf(format, args...))
	}
	if err := CheckBox(r.Box); err != nil {
		return bad("box: %v", err)
	}
	if err := release.CheckName("product", r.Product); err != nil {
		return bad("%v", err)
	}
	if _, err := repo.CheckVersion(r.Version); err != nil {
		return bad("version: %v", err)
	}
	if !validState(r.State) {
		return bad("state %q: one of %v", r.State, states)
	}
	if len(r.Step) > MaxStepBytes || !printable(r.Step) {
		return bad("step: at most %d bytes of printable UTF-8", MaxStepBytes)
	}
	if len(r.Error) > MaxErrorBytes || !utf8.ValidString(r.Error) {
		return bad("error: at most %d bytes of UTF-8", MaxErrorBytes)
	}
	if r.Error != "" && r.State != StateFailed {
		return bad("an error with state %s: only a failed run has one", r.State)
	}
	if len(r.Health) > 0 {
		if len(r.Health) > MaxHealthBytes {
			return bad("health: %d bytes, at most %d", len(r.Health), MaxHealthBytes)
		}
		if _, err := ReadHealth(r.Health); err != nil {
			return bad("health: %v", err)
		}
	}
	return nil
}

func validState(s string) bool {
	for _, x := range states {
		if s == x {
			return true
		}
	}
	return false
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Health is what the fleet page shows of a health report: its verdict and
// its key facts, the top-level scalars beside "ok" (counts, formats), in
// the order of their names.
type Health struct {
	OK    bool
	Facts []Fact
}

// Fact is one key fact of a health report.
type Fact struct{ Name, Value string }

// At most this many facts are shown, each value cut to maxFactBytes.
const (
	maxFacts     = 8
	maxFactBytes = 64
)

// ReadHealth reads a health report: a JSON object with a boolean "ok".
// Product and version are left out of the facts, which the report's own
// fields already say; a list counts as its length.
func ReadHealth(raw json.RawMessage) (Health, error) {
	var h Health
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return h, fmt.Errorf("not a JSON object: %v", err)
	}
	if fields == nil {
		return h, errors.New("not a JSON object: null")
	}
	verdict := bytes.TrimSpace(fields["ok"])
	if string(verdict) != "true" && string(verdict) != "false" {
		return h, errors.New(`no boolean "ok"`)
	}
	h.OK = string(verdict) == "true"
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == "ok" || n == "product" || n == "version" || len(h.Facts) == maxFacts {
			continue
		}
		s, ok := fact(fields[n])
		if !ok {
			continue
		}
		h.Facts = append(h.Facts, Fact{n, s})
	}
	return h, nil
}

// fact is a health report's value as the page shows it: a string, a
// number as written, a boolean, a list's length; ok is false for anything
// else (an object, null).
func fact(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return cut(s, maxFactBytes), true
	case c == '[':
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) != nil {
			return "", false
		}
		return fmt.Sprint(len(l)), true
	case c == 't' || c == 'f' || c == '-' || c >= '0' && c <= '9':
		return cut(string(raw), maxFactBytes), true
	}
	return "", false
}

// cut shortens s to at most n bytes, on a character's boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
