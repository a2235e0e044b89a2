package fleet

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/repo"
)

// policies: acme and beta roll 8.1.0 out over 8.0.0 since an hour before
// t0; acme's rollout halts at haltAt failures, beta's at 1.
func policies(haltAt int) Static {
	rollout := func(n int) *repo.Rollout {
		return &repo.Rollout{Previous: "8.0.0", Start: t0.Add(-time.Hour), StartPermille: 500, Seconds: 7200, HaltFailures: n}
	}
	return Static{
		"acme": {"camrec": {Default: "8.1.0", Rollout: rollout(haltAt)}},
		"beta": {"camrec": {Default: "8.1.0", Rollout: rollout(1)}},
	}
}

func progress(t *testing.T, s *Store, pol Policies, account, product string) Progress {
	t.Helper()
	boxes, err := s.Boxes()
	if err != nil {
		t.Fatal(err)
	}
	p := Rollout(boxes, pol, account, product, s.now())
	p.Fraction = nil
	return p
}

// TestRolloutCounts: done is the boxes whose last report is done on the
// default with health not failed, out of the account's boxes of the
// product and those never heard from; failures are the boxes that failed
// on the default, counted once each and still after a success; the halt
// comes at the threshold and not before.
func TestRolloutCounts(t *testing.T) {
	s, c := newStore(t)
	pol := policies(2)
	srv := &Server{Store: s, Policies: pol}
	tok := map[string]string{}
	for _, b := range []string{"box-1", "box-2", "box-3", "box-4", "box-5", "box-6"} {
		tok[b] = enroll(t, s, b, "acme", "")
	}
	tok["beta-1"] = enroll(t, s, "beta-1", "beta", "")
	ok := rep("box-1", "8.1.0", StateDone)
	ok.Health = health(true)
	send(t, srv, tok["box-1"], ok)
	send(t, srv, tok["box-2"], rep("box-2", "8.1.0", StateDone))
	send(t, srv, tok["box-3"], rep("box-3", "8.0.0", StateDone))
	failed := rep("box-4", "8.1.0", StateFailed)
	failed.Step, failed.Error = "write system", "read-back: hash mismatch"
	send(t, srv, tok["box-4"], failed)
	send(t, srv, tok["box-4"], failed) // the same box again: one failure
	other := rep("box-6", "1.0.0", StateDone)
	other.Product = "doorcam"
	send(t, srv, tok["box-6"], other)
	send(t, srv, tok["beta-1"], rep("beta-1", "8.0.0", StateDone))

	want := Progress{Account: "acme", Product: "camrec", Default: "8.1.0", Previous: "8.0.0", Done: 2, Total: 5, Failures: 1, HaltFailures: 2}
	if got := progress(t, s, pol, "acme", "camrec"); !reflect.DeepEqual(got, want) {
		t.Fatalf("one failure, below the threshold:\n got %+v\nwant %+v", got, want)
	}
	if got := progress(t, s, pol, "acme", "doorcam"); got.Total != 2 || got.Default != "" || got.Halted {
		t.Fatalf("doorcam of acme, which sets no default: %+v", got)
	}

	c.t = t0.Add(10 * time.Minute)
	sick := rep("box-3", "8.1.0", StateDone)
	sick.Health = health(false)
	send(t, srv, tok["box-3"], sick)
	want.Failures, want.Halted, want.HaltedBy = 2, true, HaltedByFailures
	if got := progress(t, s, pol, "acme", "camrec"); !reflect.DeepEqual(got, want) {
		t.Fatalf("two failures, the threshold:\n got %+v\nwant %+v", got, want)
	}
	if h, err := s.Halted(pol, "acme", "camrec"); err != nil || !h {
		t.Fatalf("Halted: %v, %v", h, err)
	}

	send(t, srv, tok["box-4"], rep("box-4", "8.1.0", StateDone))
	want.Done = 3
	if got := progress(t, s, pol, "acme", "camrec"); !reflect.DeepEqual(got, want) {
		t.Fatalf("box-4 done after its failure: the halt holds:\n got %+v\nwant %+v", got, want)
	}

	all := Rollouts(mustBoxes(t, s), pol, s.now())
	var names []string
	for _, p := range all {
		names = append(names, p.Account+"/"+p.Product)
	}
	if got := strings.Join(names, " "); got != "acme/camrec acme/doorcam beta/camrec" {
		t.Fatalf("rollouts %s", got)
	}
	if f := all[0].Fraction; f == nil || math.Abs(*f-(0.5+0.5*70.0/120)) > 1e-9 {
		t.Fatalf("fraction %v, want 0.79 70 minutes into a 2-hour rollout from 0.5", f)
	}
}

func mustBoxes(t *testing.T, s *Store) []Box {
	t.Helper()
	b, err := s.Boxes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHaltThreshold: the halt is at the threshold, never without one,
// always when the policy halts, only for failures since the rollout
// started, and a new default starts afresh.
func TestHaltThreshold(t *testing.T) {
	s, c := newStore(t)
	srv := &Server{Store: s}
	c.t = t0.Add(-2 * time.Hour) // before the rollout's start
	for i := 1; i <= 3; i++ {
		box := fmt.Sprint("box-", i)
		tok := enroll(t, s, box, "acme", "")
		send(t, srv, tok, rep(box, "8.1.0", StateFailed))
		if i == 3 {
			c.t = t0 // after it
			send(t, srv, tok, rep(box, "8.1.0", StateFailed))
		}
	}
	rolling := func(change func(a *repo.Account)) Static {
		a := &repo.Account{Default: "8.1.0", Rollout: &repo.Rollout{Previous: "8.0.0", Start: t0.Add(-time.Hour), Seconds: 3600}}
		change(a)
		return Static{"acme": {"camrec": a}}
	}
	for _, c := range []struct {
		name     string
		pol      Policies
		failures int
		halted   string
	}{
		{"no threshold", rolling(func(a *repo.Account) {}), 1, ""},
		{"below the threshold", rolling(func(a *repo.Account) { a.Rollout.HaltFailures = 2 }), 1, ""},
		{"at the threshold", rolling(func(a *repo.Account) { a.Rollout.HaltFailures = 1 }), 1, HaltedByFailures},
		{"halted by the policy", rolling(func(a *repo.Account) { a.Rollout.Halted = true }), 1, HaltedByPolicy},
		{"no rollout: every failure", rolling(func(a *repo.Account) { a.Rollout = nil }), 3, ""},
		{"a rollout started before them all", rolling(func(a *repo.Account) { a.Rollout.Start = t0.Add(-3 * time.Hour); a.Rollout.HaltFailures = 3 }), 3, HaltedByFailures},
		{"a new default", rolling(func(a *repo.Account) { a.Default = "8.2.0"; a.Rollout.HaltFailures = 1 }), 0, ""},
	} {
		p := progress(t, s, c.pol, "acme", "camrec")
		if p.Failures != c.failures || p.Halted != (c.halted != "") || p.HaltedBy != c.halted {
			t.Errorf("%s: %d failures, halted %v by %q; want %d, by %q", c.name, p.Failures, p.Halted, p.HaltedBy, c.failures, c.halted)
		}
	}
}

type brokenPolicies struct{}

func (brokenPolicies) Account(account, product string) (*repo.Account, error) {
	return nil, fmt.Errorf("account %s: %w", account, repo.ErrUnknown)
}

// TestPolicyUnreadable: a policy that cannot be read is said, and Halted
// gives its error rather than a guess.
func TestPolicyUnreadable(t *testing.T) {
	s, _ := newStore(t)
	tok := enroll(t, s, "box-1", "acme", "")
	send(t, &Server{Store: s}, tok, rep("box-1", "8.1.0", StateDone))
	if p := progress(t, s, brokenPolicies{}, "acme", "camrec"); !strings.Contains(p.Error, repo.ErrUnknown.Error()) {
		t.Fatalf("progress %+v", p)
	}
	if _, err := s.Halted(brokenPolicies{}, "acme", "camrec"); !errors.Is(err, repo.ErrUnknown) {
		t.Fatalf("Halted: %v", err)
	}
	if p := progress(t, s, nil, "acme", "camrec"); p.Default != "" || p.Total != 1 || p.Halted {
		t.Fatalf("no policies: %+v", p)
	}
}

// TestReadHealth: the verdict, and the key facts in the order of their
// names: numbers as written, a list's length, long strings cut on a
// character, objects, product and version left out.
func TestReadHealth(t *testing.T) {
	h, err := ReadHealth([]byte(`{"product":"camrec","version":"8.1.0","ok":false,"bytes":7864320,"volumes":["a","b","c"],"nested":{"x":1},"note":"` + strings.Repeat("é", 40) + `","index_format":3,"degraded":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Health{OK: false, Facts: []Fact{{Name: "bytes", Value: "7864320"}, {Name: "degraded", Value: "true"}, {Name: "index_format", Value: "3"}, {Name: "note", Value: strings.Repeat("é", 32) + "…"}, {Name: "volumes", Value: "3"}}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	for _, bad := range []string{`null`, `[]`, `{"ok":1}`, `{"ok":null}`, `{}`, `{"ok":true`} {
		if _, err := ReadHealth([]byte(bad)); err == nil {
			t.Errorf("%s read as a health report", bad)
		}
	}
}
