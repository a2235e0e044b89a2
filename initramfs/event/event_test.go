package event

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEmitParseRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	em := NewEmitter(&buf)
	type ready struct {
		Uptime float64 `json:"uptime"`
	}
	if err := em.Emit("ready", ready{Uptime: 3.25}); err != nil {
		t.Fatal(err)
	}
	if err := em.Emit("error", map[string]string{"error": "bad key"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	var up float64
	err := Scan(&buf, nil, func(ev Event, err error) error {
		if err != nil {
			return err
		}
		got = append(got, ev.Type)
		if ev.Type == "ready" {
			var r ready
			if err := ev.Decode(&r); err != nil {
				return err
			}
			up = r.Uptime
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "ready,error" || up != 3.25 {
		t.Errorf("got events %v uptime %v, want ready,error and 3.25", got, up)
	}
}

func TestParseAfterKernelNoise(t *testing.T) {
	ev, ok, err := Parse("[    3.1] virtio_blk virtio2: [vda] 1 sectors@passeur {\"event\":\"ready\"}\r")
	if !ok || err != nil || ev.Type != "ready" {
		t.Errorf("Parse = %v, %v, %v; want ready event", ev, ok, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, line := range []string{Prefix + "{not json", Prefix + `{"x":1}`} {
		if _, ok, err := Parse(line); !ok || err == nil {
			t.Errorf("Parse(%q) = ok %v err %v; want an error", line, ok, err)
		}
	}
	if _, ok, _ := Parse("plain kernel line"); ok {
		t.Error("plain line parsed as an event")
	}
}

func TestMarshalRejectsNonObject(t *testing.T) {
	if _, err := Marshal("x", []int{1}); err == nil {
		t.Error("Marshal of a list: want an error")
	}
}

func TestScanStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	in := Prefix + `{"event":"a"}` + "\n" + Prefix + `{"event":"b"}` + "\n"
	n := 0
	err := Scan(strings.NewReader(in), nil, func(Event, error) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Scan = %v after %d events; want stop after 1", err, n)
	}
}
