package repo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/passeur/passeur/image/version"
)

// Catalog is what a repository publishes of one product: its versions,
// oldest first, each with its policy.
type Catalog struct {
	Product  string
	Versions []version.Version
	Policy   map[string]Release // by version
	Tags     Tags               // the vendor's tags
}

// CatalogOf reads a product's catalog out of the top-level targets (by
// path, custom gives each one's custom metadata): its versions with their
// policy, and its vendor tags. It takes any target type, so that this
// package, which every box links, does not depend on a TUF library.
func CatalogOf[T any](targets map[string]T, custom func(T) *json.RawMessage, product string) (*Catalog, error) {
	c := &Catalog{Product: product}
	for p, tf := range targets {
		prod, ver, ok := ParseManifestTarget(p)
		if !ok || prod != product {
			continue
		}
		pol, err := ParseCustom(custom(tf), (*Release).Check)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		c.Add(version.MustParse(ver), pol)
	}
	var tagsCustom *json.RawMessage
	if tf, ok := targets[TagsTarget(product)]; ok {
		tagsCustom = custom(tf)
	}
	tags, err := ParseCustom(tagsCustom, (*Tags).Check)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TagsTarget(product), err)
	}
	c.Tags = tags
	return c, nil
}

// Add lists a version with its policy.
func (c *Catalog) Add(v version.Version, p Release) {
	if c.Policy == nil {
		c.Policy = map[string]Release{}
	}
	if _, ok := c.Policy[v.String()]; !ok {
		c.Versions = append(c.Versions, v)
		sort.Slice(c.Versions, func(i, j int) bool { return c.Versions[i].Compare(c.Versions[j]) < 0 })
	}
	c.Policy[v.String()] = p
}

// Has reports whether the catalog lists v.
func (c *Catalog) Has(v string) bool {
	_, ok := c.Policy[v]
	return ok
}

// Hop is one migration of a route.
type Hop struct {
	Version string
	// BootOnce: the box must boot this version before the next hop.
	BootOnce bool
}

// Route is the path of migrations from a box's version to the one it
// wants: through every barrier between them, out of a dead end only by
// one of its exits. from is the zero Version for a blank box (an install
// goes straight to its version). An older version is ErrDowngrade unless
// downgrades are allowed; then the route is the one hop.
func (c *Catalog) Route(from version.Version, to string, allowDowngrade bool) ([]Hop, error) {
	target, err := CheckVersion(to)
	if err != nil {
		return nil, err
	}
	if !c.Has(to) {
		return nil, fmt.Errorf("%s %s: %w", c.Product, to, ErrUnpublished)
	}
	if from.String() == "" {
		return []Hop{c.hop(to)}, nil
	}
	switch cmp := from.Compare(target); {
	case cmp == 0:
		return nil, nil
	case cmp > 0:
		if !allowDowngrade {
			return nil, fmt.Errorf("%w: %s %s is installed, %s asked for", ErrDowngrade, c.Product, from, to)
		}
		return []Hop{c.hop(to)}, nil
	}
	var hops []Hop
	at := from
	for len(hops) <= len(c.Versions) {
		next, err := c.next(at, target)
		if err != nil {
			return nil, err
		}
		hops = append(hops, c.hop(next.String()))
		if next.Compare(target) == 0 {
			return hops, nil
		}
		at = next
	}
	return nil, fmt.Errorf("%w: %s %s to %s loops", ErrNoRoute, c.Product, from, to)
}

// next is the version a box at `at` migrates to on its way to target.
func (c *Catalog) next(at, target version.Version) (version.Version, error) {
	if p, ok := c.Policy[at.String()]; ok && p.DeadEnd {
		// The highest exit not past the target; an exit leads only forward.
		var best version.Version
		for _, e := range p.Exits {
			v, err := CheckVersion(e)
			if err != nil || !c.Has(e) || v.Compare(at) <= 0 || v.Compare(target) > 0 {
				continue
			}
			if best.String() == "" || v.Compare(best) > 0 {
				best = v
			}
		}
		if best.String() == "" {
			return version.Version{}, fmt.Errorf("%w: %s %s leads only to %v, not toward %s", ErrDeadEnd, c.Product, at, p.Exits, target)
		}
		return best, nil // a dead end's exit is its named path, barriers or not
	}
	return c.barrierBefore(at, target), nil
}

// barrierBefore is the first barrier after at and before target, or target.
func (c *Catalog) barrierBefore(at, target version.Version) version.Version {
	for _, v := range c.Versions {
		if v.Compare(at) > 0 && v.Compare(target) < 0 && c.Policy[v.String()].Barrier {
			return v
		}
	}
	return target
}

func (c *Catalog) hop(v string) Hop { return Hop{Version: v, BootOnce: c.Policy[v].BootOnce} }

// Box is what a box tells of itself to choose its version.
type Box struct {
	Account  string // "" for a box of no account: the vendor's tags apply
	Tag      string // "" for the account's default
	Identity string // stable per box: derives its wariness
}

// Choice is the version a box should run, and why.
type Choice struct {
	Version string
	Why     string
	// Account: the account's policy chose it (its default, its rollout or
	// its tag), so that the account's allow_downgrade applies.
	Account bool
}

// Choose is the version a box should run under the vendor's tags and its
// account's policy at time now: the tag it names (the account's test tags
// first, then the vendor's), else the account's default as far as the
// rollout has reached the box, else the vendor's "stable".
func Choose(c *Catalog, acct *Account, box Box, now time.Time) (Choice, error) {
	if box.Tag != "" {
		if acct != nil {
			if v, ok := acct.Tags[box.Tag]; ok {
				return Choice{v, fmt.Sprintf("tag %s of account %s", box.Tag, box.Account), true}, nil
			}
		}
		if v, ok := c.Tags.Tags[box.Tag]; ok {
			return Choice{v, fmt.Sprintf("tag %s", box.Tag), false}, nil
		}
		return Choice{}, fmt.Errorf("%w %q for %s", ErrUnknownTag, box.Tag, c.Product)
	}
	if box.Account == "" || acct == nil {
		if v, ok := c.Tags.Tags["stable"]; ok {
			return Choice{v, "tag stable", false}, nil
		}
		return Choice{}, fmt.Errorf("%w \"stable\" for %s", ErrUnknownTag, c.Product)
	}
	if acct.Default == "" {
		return Choice{}, fmt.Errorf("%w: account %s, %s", ErrNoDefault, box.Account, c.Product)
	}
	r := acct.Rollout
	if r == nil {
		return Choice{acct.Default, fmt.Sprintf("default of account %s", box.Account), true}, nil
	}
	if r.Halted {
		return Choice{r.Previous, fmt.Sprintf("the rollout of %s to account %s is halted", acct.Default, box.Account), true}, nil
	}
	w, f := Wariness(box.Account, box.Identity), r.Fraction(now)
	if w < f {
		return Choice{acct.Default, fmt.Sprintf("default of account %s (rollout at %.0f%%, this box's turn came at %.0f%%)", box.Account, 100*f, 100*w), true}, nil
	}
	return Choice{r.Previous, fmt.Sprintf("the rollout of %s to account %s is at %.0f%%: this box's turn comes at %.0f%%", acct.Default, box.Account, 100*f, 100*w), true}, nil
}

// Fraction is the share of boxes the rollout has reached at now: its start
// fraction at its start, growing linearly to all of them after its
// duration.
func (r *Rollout) Fraction(now time.Time) float64 {
	if now.Before(r.Start) {
		return 0
	}
	if r.Seconds <= 0 {
		return 1
	}
	start := float64(r.StartPermille) / 1000
	f := start + (1-start)*now.Sub(r.Start).Seconds()/float64(r.Seconds)
	if f > 1 {
		return 1
	}
	return f
}

// Wariness is a box's place in its account's rollouts, in [0, 1): stable
// for a box, spread evenly over an account's boxes, different from one
// account to another.
func Wariness(account, identity string) float64 {
	h := sha256.Sum256([]byte("passeur rollout\x00" + account + "\x00" + identity))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// Session splits a route into what one rescue session does: it passes
// through the hops before the first one the box must boot (BootOnce), or
// before the last, without writing them, and writes that one. The route
// must not be empty.
func Session(hops []Hop) (through []Hop, write Hop) {
	n := 0
	for n < len(hops)-1 && !hops[n].BootOnce {
		n++
	}
	return hops[:n], hops[n]
}
