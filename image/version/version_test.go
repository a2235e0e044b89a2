package version

import (
	"errors"
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
	for _, s := range []string{"", "7.", ".7", "7..1", "v7", "7.a", "07.1", "7.14-", "-rc1", "7 .1", "99999999999999999999"} {
		if _, err := Parse(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", s, err)
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

func FuzzParse(f *testing.F) {
	for _, s := range []string{"7.14.0.3", "8.0.0-rc1", "1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			return
		}
		if v.Compare(v) != 0 || v.String() != s {
			t.Errorf("%q: not equal to itself or not round-tripped", s)
		}
	})
}
