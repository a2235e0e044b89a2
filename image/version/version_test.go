package version

import (
	"bufio"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"7.14.0.3", "7.14.0.2", 1},
		{"7.14", "7.14.0.0", 0},
		{"7.9", "7.14", -1}, // numbers, not strings
		{"7.14.0.10", "7.14.0.9", 1},
		{"8", "7.99.99.99", 1},
		{"8.0.0-rc1", "8.0.0", -1},
		{"8.0.0-rc2", "8.0.0-rc1", 1},
		{"8.0.0-rc1", "7.14.0.3", 1},
	} {
		if got := MustParse(tc.a).Compare(MustParse(tc.b)); got != tc.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := MustParse(tc.b).Compare(MustParse(tc.a)); got != -tc.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"", "7.", ".7", "7..1", "v7", "7.a", "07.1", "7.14-", "-rc1", "7 .1", "99999999999999999999",
		"8.0.0-x/../../../passeur", "8.0.0-rc1/x", "8.0.0-..", "8.0.0-rc..1", "8.0.0-rc.", "8.0.0-.rc", "8.0.0-rc 1", "8.0.0-rc\x00",
		"8.0.0-rc\n1", "8.0.0-rc_1", "8.0.0-ré", "8.0.0-rc+b1", "8.0.0-\\..\\x"} {
		if _, err := Parse(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", s, err)
		}
	}
}

// TestParsePreRelease accepts what semver allows in a pre-release tag.
func TestParsePreRelease(t *testing.T) {
	for s, pre := range map[string]string{"8.0.0-rc1": "rc1", "8.0.0-rc.1": "rc.1", "8.0.0-rc-1": "rc-1", "8-0.3.7": "0.3.7", "8.0.0-x-y-z.--": "x-y-z.--"} {
		if v, err := Parse(s); err != nil || v.Pre != pre {
			t.Errorf("Parse(%q) = %+v, %v; want pre-release %q", s, v, err, pre)
		}
	}
}

func TestRange(t *testing.T) {
	r, err := ParseRange(">=7.14.0.2 <8")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{
		"7.14.0.2": true, "7.14.0.3": true, "7.15": true, "7.99.1.1": true,
		"7.14.0.1": false, "7.12": false, "8": false, "8.0.0.1": false, "8.0.0-rc1": false,
	} {
		if got := r.Contains(MustParse(v)); got != want {
			t.Errorf("%s in %s = %v, want %v", v, r, got, want)
		}
	}
	alt, err := ParseRange("=7.13.5 || >=7.14 <8 !=7.14.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pre, _ := ParseRange(">=8.0.0-rc2 <9")
	for v, want := range map[string]bool{"8.0.0-rc1": false, "8.0.0-rc2": true, "8.0.0-rc3": true, "8.1.0-rc1": false, "8.1": true} {
		if got := pre.Contains(MustParse(v)); got != want {
			t.Errorf("%s in %s = %v, want %v", v, pre, got, want)
		}
	}
	for v, want := range map[string]bool{"7.13.5": true, "7.13.6": false, "7.14.0.1": false, "7.14.0.2": true} {
		if got := alt.Contains(MustParse(v)); got != want {
			t.Errorf("%s in %s = %v, want %v", v, alt, got, want)
		}
	}
}

func TestParseRangeErrors(t *testing.T) {
	for _, s := range []string{"", "7.14", ">=7.14 ||", "~7", ">=x"} {
		if _, err := ParseRange(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseRange(%q) = %v, want ErrSyntax", s, err)
		}
	}
}

// lines reads a testdata file of one input a line, # starting a comment.
func lines(f *testing.F, name string) []string {
	data, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	for sc := bufio.NewScanner(strings.NewReader(string(data))); sc.Scan(); {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// grammar is what Parse may accept: numbers without leading zeros, and a
// semver pre-release tag. Nothing else, so a version is always a safe
// file name.
var grammar = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// FuzzParse checks that Parse accepts only the grammar, round-trips, and
// orders consistently against the versions of the repository.
func FuzzParse(f *testing.F) {
	seeds := lines(f, "testdata/versions.txt")
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q) = %v, not ErrSyntax", s, err)
			}
			return
		}
		if !grammar.MatchString(s) {
			t.Errorf("Parse(%q) accepted what the grammar refuses", s)
		}
		if v.Compare(v) != 0 || v.String() != s {
			t.Errorf("%q: not equal to itself or not round-tripped", s)
		}
		var back Version
		if b, _ := v.MarshalText(); back.UnmarshalText(b) != nil || !reflect.DeepEqual(back, v) {
			t.Errorf("%q: text round trip gives %+v", s, back)
		}
		for _, w := range seeds {
			if w, err := Parse(w); err == nil && v.Compare(w) != -w.Compare(v) {
				t.Errorf("Compare(%s, %s) = %d, but Compare(%s, %s) = %d", v, w, v.Compare(w), w, v, w.Compare(v))
			}
		}
	})
}

// FuzzRange checks that ParseRange does not panic, that what it accepts
// parses again to the same range, and that Contains keeps its contract on
// the versions the range names: a version is in the range only if every
// comparison of one alternative holds, a release whenever they all do, and
// a pre-release only next to a comparison naming a pre-release of the same
// numbers.
func FuzzRange(f *testing.F) {
	for _, s := range lines(f, "testdata/ranges.txt") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("ParseRange(%q) = %v, not ErrSyntax", s, err)
			}
			return
		}
		again, err := ParseRange(r.String())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("ParseRange(%q).String() = %q parses to %+v, %v", s, r.String(), again, err)
		}
		var back Range
		if b, _ := r.MarshalText(); back.UnmarshalText(b) != nil || !reflect.DeepEqual(back, r) {
			t.Errorf("%q: text round trip gives %+v", s, back)
		}
		var probes []Version
		for _, alt := range r.alts {
			for _, c := range alt {
				next := Version{Parts: append(append([]uint64(nil), c.v.Parts...), 1)}
				probes = append(probes, c.v, next, Version{Parts: c.v.Parts}, Version{Parts: c.v.Parts, Pre: "0"})
			}
			if len(alt) == 1 && alt[0].op == "=" && !r.Contains(alt[0].v) {
				t.Errorf("%q does not contain %s", s, alt[0].v)
			}
		}
		for _, v := range probes {
			in, allHold := r.Contains(v), false
			for _, alt := range r.alts {
				holds, namesPre := true, false
				for _, c := range alt {
					holds = holds && c.holds(v)
					namesPre = namesPre || c.v.Pre != "" && sameNumbers(c.v, v)
				}
				allHold = allHold || holds && (v.Pre == "" || namesPre)
				if holds && v.Pre == "" && !in {
					t.Errorf("%q: every comparison of an alternative holds for %v, yet not contained", s, v)
				}
			}
			if in != allHold {
				t.Errorf("%q contains %+v = %v, its alternatives say %v", s, v, in, allHold)
			}
		}
	})
}
