package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/version"
)

func catalog(t *testing.T, spec string) *Catalog {
	t.Helper()
	c := &Catalog{Product: "camrec"}
	for _, f := range strings.Fields(spec) {
		var p Release
		v, flags, _ := strings.Cut(f, ":")
		for _, fl := range strings.Split(flags, ",") {
			switch {
			case fl == "barrier":
				p.Barrier = true
			case fl == "boot":
				p.BootOnce = true
			case strings.HasPrefix(fl, "deadend"):
				p.DeadEnd = true
				if exits := strings.TrimPrefix(fl, "deadend"); exits != "" {
					p.Exits = strings.Split(strings.TrimPrefix(exits, "="), "+")
				}
			}
		}
		c.Add(version.MustParse(v), p)
	}
	return c
}

func hops(h []Hop) string {
	var s []string
	for _, x := range h {
		if x.BootOnce {
			s = append(s, x.Version+"!")
		} else {
			s = append(s, x.Version)
		}
	}
	return strings.Join(s, " ")
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		catalog, from, to string
		downgrade         bool
		want              string
		err               error
	}{
		{"8.0.0 8.1.0 8.2.0", "8.0.0", "8.2.0", false, "8.2.0", nil},
		{"8.0.0 8.1.0:barrier 8.2.0", "8.0.0", "8.2.0", false, "8.1.0 8.2.0", nil},
		{"8.0.0 8.1.0:barrier,boot 8.2.0", "8.0.0", "8.2.0", false, "8.1.0! 8.2.0", nil},
		{"8.0.0 8.1.0:barrier 8.2.0", "8.1.0", "8.2.0", false, "8.2.0", nil},
		{"8.0.0 8.1.0:barrier 8.2.0", "8.0.0", "8.1.0", false, "8.1.0", nil},
		// The seed's path: from 7.12 one passes 7.14.0.3 before 8.
		{"7.14.0.3:barrier 8.0.0 8.1.0:barrier 8.2.0", "7.12", "8.2.0", false, "7.14.0.3 8.1.0 8.2.0", nil},
		// The installed version need not be published.
		{"7.14.0.3:barrier 8.0.0", "7.14.0.2", "8.0.0", false, "7.14.0.3 8.0.0", nil},
		// A blank box installs the version straight.
		{"8.0.0 8.1.0:barrier 8.2.0", "", "8.2.0", false, "8.2.0", nil},
		{"8.0.0 8.1.0", "8.1.0", "8.1.0", false, "", nil},
		{"8.0.0 8.1.0", "8.1.0", "8.0.0", false, "", ErrDowngrade},
		{"8.0.0 8.1.0", "8.1.0", "8.0.0", true, "8.0.0", nil},
		{"8.0.0 8.1.0", "8.0.0", "8.3.0", false, "", ErrUnpublished},
		// A dead end is left only by its exits, the furthest toward the target.
		{"8.0.0:deadend 8.1.0 8.2.0", "8.0.0", "8.2.0", false, "", ErrDeadEnd},
		{"8.0.0:deadend=8.1.0 8.1.0 8.2.0", "8.0.0", "8.2.0", false, "8.1.0 8.2.0", nil},
		{"8.0.0:deadend=8.1.0+8.2.0 8.1.0 8.2.0 8.3.0", "8.0.0", "8.3.0", false, "8.2.0 8.3.0", nil},
		// A dead end leaves by its exit, whatever barrier lies between.
		{"8.0.0:deadend=8.2.0 8.1.0:barrier 8.2.0", "8.0.0", "8.2.0", false, "8.2.0", nil},
		{"7.0:deadend=8.0 7.5:barrier 8.0 9.0", "7.0", "9.0", false, "8.0 9.0", nil},
		// An exit that is not published, or backward, leads nowhere.
		{"8.0.0:deadend=8.9.0 8.1.0", "8.0.0", "8.1.0", false, "", ErrDeadEnd},
		{"6.0 7.0:deadend=6.0 8.0", "7.0", "8.0", false, "", ErrDeadEnd},
	} {
		name := fmt.Sprintf("%s/%s->%s", tc.catalog, tc.from, tc.to)
		var from version.Version
		if tc.from != "" {
			from = version.MustParse(tc.from)
		}
		got, err := catalog(t, tc.catalog).Route(from, tc.to, tc.downgrade)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: got %q, %v; want %v", name, hops(got), err, tc.err)
			}
			continue
		}
		if err != nil || hops(got) != tc.want {
			t.Errorf("%s: got %q, %v; want %q", name, hops(got), err, tc.want)
		}
	}
}

func TestChoose(t *testing.T) {
	c := catalog(t, "8.0.0 8.1.0 8.2.0")
	c.Tags.Tags = map[string]string{"stable": "8.0.0", "beta": "8.2.0"}
	acme := &Account{Default: "8.0.0", Tags: map[string]string{"test-8.1": "8.1.0"}}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		acct *Account
		box  Box
		want string
		err  error
	}{
		{acme, Box{Account: "acme", Tag: "test-8.1"}, "8.1.0", nil},
		{acme, Box{Account: "acme"}, "8.0.0", nil},
		{acme, Box{Account: "acme", Tag: "beta"}, "8.2.0", nil}, // a vendor tag
		{acme, Box{Account: "acme", Tag: "test-9"}, "", ErrUnknownTag},
		{nil, Box{}, "8.0.0", nil},
		{&Account{}, Box{Account: "acme"}, "", ErrNoDefault},
	} {
		got, err := Choose(c, tc.acct, tc.box, now)
		if !errors.Is(err, tc.err) || got.Version != tc.want {
			t.Errorf("%+v: got %+v, %v; want %s, %v", tc.box, got, err, tc.want, tc.err)
		}
	}
}

// TestRollout phases a default in over a thousand boxes: the share that
// takes it follows the fraction, a box once in stays in, a halt stops it.
func TestRollout(t *testing.T) {
	c := catalog(t, "8.0.0 8.1.0")
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	acct := &Account{Default: "8.1.0", Rollout: &Rollout{Previous: "8.0.0", Start: start, StartPermille: 100, Seconds: 10 * 3600}}
	const n = 1000
	took := func(at time.Time) map[int]bool {
		in := map[int]bool{}
		for i := 0; i < n; i++ {
			ch, err := Choose(c, acct, Box{Account: "acme", Identity: fmt.Sprintf("box-%04d", i)}, at)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Version == "8.1.0" {
				in[i] = true
			}
		}
		return in
	}
	var before map[int]bool
	for _, h := range []float64{-1, 0, 1, 5, 9, 10, 20} {
		at := start.Add(time.Duration(h * float64(time.Hour)))
		in := took(at)
		want := acct.Rollout.Fraction(at)
		if got := float64(len(in)) / n; math.Abs(got-want) > 0.05 {
			t.Errorf("after %v h: %.3f of the boxes took 8.1.0, want about %.3f", h, got, want)
		}
		for i := range before {
			if !in[i] {
				t.Errorf("after %v h: box %d left the rollout it was in", h, i)
			}
		}
		before = in
	}
	acct.Rollout.Halted = true
	if in := took(start.Add(5 * time.Hour)); len(in) != 0 {
		t.Errorf("halted: %d boxes still take 8.1.0", len(in))
	}
	if Wariness("acme", "box-1") == Wariness("other", "box-1") {
		t.Error("a box's wariness is the same in two accounts")
	}
}

func TestParseCustom(t *testing.T) {
	raw := func(s string) *json.RawMessage { r := json.RawMessage(s); return &r }
	for _, tc := range []struct {
		in  string
		err error
	}{
		{`{"passeur":{"default":"8.0.0","tags":{"test-8.1":"8.1.0"}}}`, nil},
		{`{"other":1}`, nil},
		{`{"passeur":{"default":"8.0.0","sneaky":1}}`, ErrBadPolicy},
		{`{"passeur":{"default":"../8"}}`, ErrBadPolicy},
		{`{"passeur":{"tags":{"Stable":"8.0.0"}}}`, ErrBadPolicy},
		{`{"passeur":{"rollout":{"previous":"8.0.0","start_permille":100}}}`, ErrBadPolicy}, // no default
		{`{"passeur":{"default":"8.1.0","rollout":{"previous":"8.0.0","start_permille":2000}}}`, ErrBadPolicy},
		{`{"passeur":` + strings.Repeat(" ", MaxCustomBytes) + `{}}`, ErrBadPolicy},
		{`[1]`, ErrBadPolicy},
	} {
		_, err := ParseCustom[Account](raw(tc.in), (*Account).Check)
		if !errors.Is(err, tc.err) {
			t.Errorf("%.60s: got %v, want %v", tc.in, err, tc.err)
		}
	}
	r, err := ParseCustom[Release](raw(`{"passeur":{"barrier":true,"dead_end":true,"exits":["8.1.0"]}}`), (*Release).Check)
	if err != nil || !r.Barrier || !r.DeadEnd || len(r.Exits) != 1 {
		t.Errorf("release policy: %+v, %v", r, err)
	}
	if _, err := ParseCustom[Release](raw(`{"passeur":{"exits":["8.1.0"]}}`), (*Release).Check); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("exits without a dead end: %v", err)
	}
}

// FuzzPolicy: whatever custom metadata a repository signs, parsing it
// never panics, and what it accepts routes without looping.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		`{"passeur":{"default":"8.0.0","tags":{"test-8.1":"8.1.0"},"rollout":{"previous":"7.14.0.3","start":"2026-12-01T00:00:00Z","start_permille":100,"duration_seconds":3600}}}`,
		`{"passeur":{"barrier":true,"dead_end":true,"exits":["8.1.0"]}}`,
		`{"other":{}}`,
	} {
		f.Add([]byte(s))
	}
	c := catalog(&testing.T{}, "7.14.0.3:barrier 8.0.0 8.1.0:deadend=8.2.0 8.2.0 9.0.0")
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := json.RawMessage(data)
		a, err := ParseCustom(&raw, (*Account).Check)
		if err == nil && a.Default != "" && c.Has(a.Default) {
			if _, err := c.Route(version.MustParse("7.12"), a.Default, a.AllowDowngrade); err != nil && !errors.Is(err, ErrDeadEnd) && !errors.Is(err, ErrDowngrade) {
				t.Errorf("route to %s: %v", a.Default, err)
			}
		}
		if p, err := ParseCustom(&raw, (*Release).Check); err == nil {
			for _, e := range p.Exits {
				if _, err := CheckVersion(e); err != nil {
					t.Errorf("accepted exit %q: %v", e, err)
				}
			}
		}
	})
}

func TestSession(t *testing.T) {
	h := func(v string, once bool) Hop { return Hop{Version: v, BootOnce: once} }
	for _, tc := range []struct {
		hops    []Hop
		through string
		write   string
	}{
		{[]Hop{h("8.2.0", false)}, "", "8.2.0"},
		{[]Hop{h("8.2.0", true)}, "", "8.2.0"},
		{[]Hop{h("8.1.0", false), h("8.2.0", false)}, "8.1.0", "8.2.0"},
		{[]Hop{h("8.1.0", true), h("8.2.0", false)}, "", "8.1.0"},
		{[]Hop{h("7.14.0.3", false), h("8.1.0", true), h("8.2.0", true)}, "7.14.0.3", "8.1.0"},
		{[]Hop{h("7.14.0.3", false), h("8.1.0", false), h("8.2.0", true)}, "7.14.0.3 8.1.0", "8.2.0"},
	} {
		through, write := Session(tc.hops)
		var vs []string
		for _, x := range through {
			vs = append(vs, x.Version)
		}
		if strings.Join(vs, " ") != tc.through || write.Version != tc.write {
			t.Errorf("Session(%v) = %v, %s; want %q, %s", tc.hops, vs, write.Version, tc.through, tc.write)
		}
	}
}
