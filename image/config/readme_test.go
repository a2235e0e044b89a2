package config

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// readmeKeys returns the README's table of kernel command line keys: each
// key (without namespace) and its values cell.
func readmeKeys(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "## Kernel command line keys")
	if i < 0 {
		t.Fatal("README.md has no section \"Kernel command line keys\"")
	}
	text = text[i:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(Namespace) + "([a-z-]+)` \\| (.*?) \\|")
	out := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(text, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestReadmeKeys: the README documents every key the agent reads, and no
// other; every mode and debug output, and no other.
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
		t.Errorf("README documents the keys %q; the agent reads %q", documented, known)
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
			t.Errorf("README gives passeur.%s the values %q; the agent knows %q", key, got, want)
		}
	}
	var ms []string
	for _, m := range modes {
		ms = append(ms, string(m))
	}
	check("mode", ms)
	check("debug", debugs)
}
