package config

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"testing"
)

// readmeKeys returns the table of kernel command line keys in this folder's
// README.md (under its "Kernel command line keys" heading, whatever its
// level): each key (without namespace) and its values cell.
func readmeKeys(t *testing.T) map[string]string {
	t.Helper()
	const file = "README.md"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("image/config/%s, the reference of the kernel command line keys: %v", file, err)
	}
	text := string(data)
	heading := regexp.MustCompile(`(?m)^(#+) Kernel command line keys[ \t]*$`)
	loc := heading.FindStringSubmatchIndex(text)
	if loc == nil {
		t.Fatalf("image/config/%s has no heading \"Kernel command line keys\"", file)
	}
	level := text[loc[2]:loc[3]]
	text = text[loc[1]:]
	// The section ends at the next heading of the same level or above.
	next := regexp.MustCompile(`(?m)^#{1,` + strconv.Itoa(len(level)) + `} `)
	if j := next.FindStringIndex(text); j != nil {
		text = text[:j[0]]
	}
	row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(Namespace) + "([a-z-]+)` \\| (.*?) \\|")
	out := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(text, -1) {
		out[m[1]] = m[2]
	}
	if len(out) == 0 {
		t.Fatalf("image/config/%s has no table of keys under \"Kernel command line keys\" (rows \"| `%s<key>` | values | default |\")", file, Namespace)
	}
	return out
}

// TestReadmeKeys: image/config/README.md documents every key the agent
// reads, and no other; every mode and debug output, and no other.
func TestReadmeKeys(t *testing.T) {
	doc := readmeKeys(t)
	var documented, known []string
	for k := range doc {
		documented = append(documented, k)
	}
	for k := range keys {
		known = append(known, k)
	}
	sort.Strings(documented)
	sort.Strings(known)
	if !slices.Equal(documented, known) {
		t.Errorf("image/config/README.md documents the keys %q; the agent reads %q", documented, known)
	}
	values := regexp.MustCompile("`([a-z-]+)`")
	check := func(key string, want []string) {
		var got []string
		for _, m := range values.FindAllStringSubmatch(doc[key], -1) {
			got = append(got, m[1])
		}
		sort.Strings(got)
		want = slices.Clone(want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("image/config/README.md gives passeur.%s the values %q; the agent knows %q", key, got, want)
		}
	}
	var ms []string
	for _, m := range modes {
		ms = append(ms, string(m))
	}
	check("mode", ms)
	check("debug", debugs)
}
