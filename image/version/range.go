package version

import (
	"fmt"
	"strings"
)

// Range is a set of versions: alternatives separated by "||", each a list of
// comparisons that must all hold, separated by spaces:
// ">=7.14.0.2 <8", "=7.13.5 || >=7.14 <8". Operators: = == != < <= > >=.
type Range struct {
	alts [][]comparison
	raw  string
}

type comparison struct {
	op string
	v  Version
}

var ops = []string{">=", "<=", "!=", "==", ">", "<", "="}

// ParseRange parses a range.
func ParseRange(s string) (Range, error) {
	r := Range{raw: s}
	for _, alt := range strings.Split(s, "||") {
		var cs []comparison
		for _, f := range strings.Fields(alt) {
			c, err := parseComparison(f)
			if err != nil {
				return Range{}, fmt.Errorf("range %q: %w", s, err)
			}
			cs = append(cs, c)
		}
		if len(cs) == 0 {
			return Range{}, fmt.Errorf("%w: range %q has an empty alternative", ErrSyntax, s)
		}
		r.alts = append(r.alts, cs)
	}
	return r, nil
}

func parseComparison(f string) (comparison, error) {
	for _, op := range ops {
		if rest, ok := strings.CutPrefix(f, op); ok {
			v, err := Parse(rest)
			if err != nil {
				return comparison{}, err
			}
			if op == "==" {
				op = "="
			}
			return comparison{op, v}, nil
		}
	}
	return comparison{}, fmt.Errorf("%w: %q does not start with one of %v", ErrSyntax, f, ops)
}

// Contains reports whether v is in the range. As with npm's semver, a
// pre-release is only in an alternative that names a pre-release of the same
// numbers: "8.0.0-rc1" is not in "<8", which means "any 7.x".
func (r Range) Contains(v Version) bool {
	for _, alt := range r.alts {
		ok := v.Pre == ""
		for _, c := range alt {
			if c.v.Pre != "" && sameNumbers(c.v, v) {
				ok = true
			}
		}
		for _, c := range alt {
			ok = ok && c.holds(v)
		}
		if ok {
			return true
		}
	}
	return false
}

func sameNumbers(a, b Version) bool {
	return Version{Parts: a.Parts}.Compare(Version{Parts: b.Parts}) == 0
}

func (c comparison) holds(v Version) bool {
	n := v.Compare(c.v)
	switch c.op {
	case "=":
		return n == 0
	case "!=":
		return n != 0
	case "<":
		return n < 0
	case "<=":
		return n <= 0
	case ">":
		return n > 0
	}
	return n >= 0
}

// String returns the range as it was written.
func (r Range) String() string { return r.raw }

// MarshalText writes the range as written.
func (r Range) MarshalText() ([]byte, error) { return []byte(r.raw), nil }

// UnmarshalText parses a range.
func (r *Range) UnmarshalText(b []byte) error {
	p, err := ParseRange(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}
