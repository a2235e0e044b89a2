package fleet

import (
	"fmt"
	"sort"
	"time"

	"github.com/passeur/passeur/image/repo"
)

// Policies gives an account's policy for a product, as its repository
// signs it: repoclient.Client (metadata verified from a root) and
// editor.Repo (the vendor's folder) both do.
type Policies interface {
	Account(account, product string) (*repo.Account, error)
}

// Static is a fixed set of policies, by account then product: for tests,
// and for a server given no repository.
type Static map[string]map[string]*repo.Account

// Account is account's policy for product; one Static does not hold is
// empty (no default).
func (s Static) Account(account, product string) (*repo.Account, error) {
	if a := s[account][product]; a != nil {
		return a, nil
	}
	return &repo.Account{}, nil
}

// Progress is how far an account's default has come on its boxes of one
// product.
//
//   - Total: the account's boxes that last reported the product, or never
//     reported (a box is enrolled without saying what it runs).
//   - Done: those whose last report is done on the default, health not failed.
//   - Failures: those that failed on the default (a failed run toward it,
//     or a health report not ok on it) since its rollout started; a box
//     that failed and then succeeded still counts.
//   - Halted: the policy halts the rollout, or Failures reached the
//     policy's HaltFailures (> 0). The server's halt holds for as long as
//     the default and its rollout's start are the same: failures are not
//     forgotten when a box succeeds later.
type Progress struct {
	Account      string   `json:"account"`
	Product      string   `json:"product"`
	Default      string   `json:"default"`
	Previous     string   `json:"previous,omitempty"` // the default a rollout phases Default in over
	Done         int      `json:"done"`
	Total        int      `json:"total"`
	Failures     int      `json:"failures"`
	HaltFailures int      `json:"halt_failures,omitempty"`
	Halted       bool     `json:"halted"`
	HaltedBy     string   `json:"halted_by,omitempty"` // HaltedByPolicy or HaltedByFailures
	Fraction     *float64 `json:"fraction,omitempty"`  // the share of boxes the rollout has reached, under a rollout
	Error        string   `json:"error,omitempty"`     // the policy could not be read: nothing else is known
}

// Why a rollout is halted.
const (
	HaltedByPolicy   = "policy"
	HaltedByFailures = "failures"
)

// Products are the products an account's boxes last reported, sorted.
func Products(boxes []Box, account string) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range boxes {
		if p := boxProduct(&b); b.Account == account && p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// boxProduct is what the box last said it runs or is moving to.
func boxProduct(b *Box) string {
	if b.Last != nil {
		return b.Last.Product
	}
	if b.Running != nil {
		return b.Running.Product
	}
	return ""
}

// Rollout is the progress of account's default for product over boxes,
// under its policy at now.
// A policy that cannot be read is said in Error.
func Rollout(boxes []Box, pol Policies, account, product string, now time.Time) Progress {
	p, err := rollout(boxes, pol, account, product, now)
	if err != nil {
		p.Error = err.Error()
	}
	return p
}

func rollout(boxes []Box, pol Policies, account, product string, now time.Time) (Progress, error) {
	p := Progress{Account: account, Product: product}
	var a *repo.Account
	if pol != nil {
		var err error
		if a, err = pol.Account(account, product); err != nil {
			return p, fmt.Errorf("policy of account %s for %s: %w", account, product, err)
		}
	}
	if a == nil {
		a = &repo.Account{}
	}
	p.Default = a.Default
	var since time.Time
	if r := a.Rollout; r != nil {
		since, p.Previous = r.Start, r.Previous
		p.HaltFailures = r.HaltFailures
		f := r.Fraction(now)
		p.Fraction = &f
	}
	for i := range boxes {
		b := &boxes[i]
		if q := boxProduct(b); b.Account != account || q != "" && q != product {
			continue
		}
		p.Total++
		if p.Default == "" {
			continue
		}
		if l := b.Last; l != nil && l.State == StateDone && l.Product == product && l.Version == p.Default && !l.Failed() {
			p.Done++
		}
		for _, f := range b.Failures {
			if f.Product == product && f.Version == p.Default && !f.At.Before(since) {
				p.Failures++
				break
			}
		}
	}
	switch {
	case a.Rollout != nil && a.Rollout.Halted:
		p.Halted, p.HaltedBy = true, HaltedByPolicy
	case p.HaltFailures > 0 && p.Failures >= p.HaltFailures:
		p.Halted, p.HaltedBy = true, HaltedByFailures
	}
	return p, nil
}

// Rollouts is the progress of every account's default, for each product
// its boxes reported, by account then product. An account whose boxes
// never reported has no entry.
func Rollouts(boxes []Box, pol Policies, now time.Time) []Progress {
	var accounts []string
	seen := map[string]bool{}
	for _, b := range boxes {
		if !seen[b.Account] {
			seen[b.Account] = true
			accounts = append(accounts, b.Account)
		}
	}
	sort.Strings(accounts)
	var out []Progress
	for _, a := range accounts {
		for _, p := range Products(boxes, a) {
			out = append(out, Rollout(boxes, pol, a, p, now))
		}
	}
	return out
}

// Halted tells whether the rollout of account's default for product is
// halted, by its policy or by the failures the fleet reported: the mirror
// asks before it lets boxes take the default.
func (s *Store) Halted(pol Policies, account, product string) (bool, error) {
	boxes, err := s.Boxes()
	if err != nil {
		return false, err
	}
	p, err := rollout(boxes, pol, account, product, s.now())
	return p.Halted, err
}
