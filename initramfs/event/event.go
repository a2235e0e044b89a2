// Package event is the machine-readable side of the console: one JSON object
// per line behind a fixed prefix, written by the agent and read back by test
// harnesses and operators' scripts.
package event

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Prefix starts every event line on the console. It is chosen to be
// unlikely in kernel messages and easy to grep for.
const Prefix = "@passeur "

// Event is one decoded event line: its Type ("ready", "inventory", "error",
// ...) and its whole JSON object, Raw, for callers that decode the payload
// into their own struct.
type Event struct {
	Type string          `json:"event"`
	Raw  json.RawMessage `json:"-"`
}

// Decode unmarshals the whole event object into v.
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Raw, v); err != nil {
		return fmt.Errorf("decode %q event: %w", e.Type, err)
	}
	return nil
}

// Emitter writes events to a console. It is safe for concurrent use; each
// event is written with a single Write so that it is not torn by other
// writers of the same console.
type Emitter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEmitter returns an Emitter writing to w.
func NewEmitter(w io.Writer) *Emitter { return &Emitter{w: w} }

// Emit writes one event of type typ. payload must marshal to a JSON object
// (a struct or a map); its fields are merged with the "event" field.
func (e *Emitter) Emit(typ string, payload any) error {
	line, err := Marshal(typ, payload)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.w.Write(line)
	return err
}

// Marshal renders one event line, prefix and trailing newline included.
func Marshal(typ string, payload any) ([]byte, error) {
	fields := map[string]json.RawMessage{}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("marshal %q event: %w", typ, err)
		}
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, fmt.Errorf("marshal %q event: payload is not a JSON object: %w", typ, err)
		}
	}
	t, _ := json.Marshal(typ)
	fields["event"] = t
	var buf bytes.Buffer
	buf.WriteString(Prefix)
	// encoding/json sorts map keys, so the same event always renders the same.
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	buf.Write(b)
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Parse decodes the event in one console line, wherever the prefix starts in
// it (a kernel message may have been printed on the same line before it).
// ok is false for lines that hold no event.
func Parse(line string) (ev Event, ok bool, err error) {
	i := strings.Index(line, Prefix)
	if i < 0 {
		return Event{}, false, nil
	}
	body := strings.TrimRight(line[i+len(Prefix):], "\r\n")
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return Event{}, true, fmt.Errorf("event line %q: %w", body, err)
	}
	if ev.Type == "" {
		return Event{}, true, fmt.Errorf("event line %q: no \"event\" field", body)
	}
	ev.Raw = json.RawMessage(body)
	return ev, true, nil
}

// Scan reads console output from r and calls fn for every event found, and
// raw for every line (events included) if raw is not nil. It returns when r
// ends or fn returns an error.
func Scan(r io.Reader, raw func(line string), fn func(Event, error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if raw != nil {
			raw(line)
		}
		ev, ok, perr := Parse(line)
		if !ok {
			continue
		}
		if err := fn(ev, perr); err != nil {
			return err
		}
	}
	return sc.Err()
}
