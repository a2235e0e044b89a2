package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"aead.dev/minisign"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

// seed is an index as Publish writes it: camrec 7.20, 8.0.0 (stable) and
// 8.1.0-rc1 (test-lab).
func seed(t testing.TB) []byte {
	data, err := os.ReadFile("testdata/index.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSeedIndex(t *testing.T) {
	ix, err := parse(seed(t))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ix.Resolve("camrec", "stable"); err != nil || v != "8.0.0" {
		t.Errorf("stable: %s, %v", v, err)
	}
}

// TestIndexRefusals: an index Publish would never write is refused by
// name, even signed: its names become paths of the media and URLs.
func TestIndexRefusals(t *testing.T) {
	product := func(name, body string) string {
		return `{"format": 1, "products": {"` + name + `": ` + body + `}}`
	}
	many := func(n int, f func(i int) string) string {
		var s []string
		for i := range n {
			s = append(s, f(i))
		}
		return strings.Join(s, ", ")
	}
	for what, index := range map[string]string{
		"version leaving its folder":      product("camrec", `{"versions": ["8.0.0-x/../../../passeur"], "tags": {"stable": "8.0.0-x/../../../passeur"}}`),
		"version ..":                      product("camrec", `{"versions": [".."]}`),
		"version not a version":           product("camrec", `{"versions": ["eight"]}`),
		"product leaving its folder":      product("../camrec", `{"versions": ["8.0.0"]}`),
		"product with a slash":            product("cam/rec", `{"versions": ["8.0.0"]}`),
		"product empty":                   product("", `{"versions": ["8.0.0"]}`),
		"product null":                    product("camrec", `null`),
		"versions unsorted":               product("camrec", `{"versions": ["8.0.0", "7.20"]}`),
		"version twice":                   product("camrec", `{"versions": ["8.0.0", "8.0.0"]}`),
		"version twice, spelled two ways": product("camrec", `{"versions": ["7.14", "7.14.0"]}`),
		"tag to an unlisted version":      product("camrec", `{"versions": ["8.0.0"], "tags": {"stable": "9.0.0"}}`),
		"bad tag name":                    product("camrec", `{"versions": ["8.0.0"], "tags": {"Stable!": "8.0.0"}}`),
		"too many products":               `{"format": 1, "products": {` + many(maxProducts+1, func(i int) string { return fmt.Sprintf(`"p%d": {}`, i) }) + `}}`,
		"too many versions":               product("camrec", `{"versions": [`+many(maxVersions+1, func(i int) string { return fmt.Sprintf(`"%d"`, i+1) })+`]}`),
		"too many tags":                   product("camrec", `{"versions": ["8"], "tags": {`+many(maxTags+1, func(i int) string { return fmt.Sprintf(`"t%d": "8"`, i) })+`}}`),
	} {
		if _, err := parse([]byte(index)); !errors.Is(err, ErrBadIndex) {
			t.Errorf("%s: %v, want ErrBadIndex", what, err)
		}
	}
	// Refused before its signature is checked; here the signature is good.
	sk, _ := key(t)
	huge := append(bytes.Repeat([]byte(" "), MaxIndexBytes), seed(t)...)
	trusted := []minisign.PublicKey{sk.Public().(minisign.PublicKey)}
	if _, err := Verify(huge, sign.Sign(sk, huge, "test"), trusted); !errors.Is(err, ErrBadIndex) {
		t.Errorf("an index over %d bytes: %v, want ErrBadIndex", MaxIndexBytes, err)
	}
}

// FuzzIndex: no index panics the parser, and every index it accepts
// holds the invariants the rescue system relies on when it makes paths
// and URLs of its names, and writes back the same.
func FuzzIndex(f *testing.F) {
	data := seed(f)
	f.Add(data)
	f.Add([]byte(`{"format": 1}`))
	f.Add([]byte(`{"format": 1, "products": {"camrec": null}}`))
	f.Add(bytes.Replace(data, []byte(`"8.1.0-rc1"`), []byte(`"8.1.0-x/../.."`), -1))
	f.Add(bytes.Replace(data, []byte(`"7.20"`), []byte(`"9.0"`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := parse(data)
		if err != nil {
			return
		}
		if len(ix.Products) > maxProducts {
			t.Fatalf("%d products", len(ix.Products))
		}
		for name, p := range ix.Products {
			if p == nil || checkName(name) != nil || len(p.Versions) > maxVersions || len(p.Tags) > maxTags {
				t.Fatalf("product %q: %+v", name, p)
			}
			for i, s := range p.Versions {
				v, err := version.Parse(s)
				if err != nil || i > 0 && version.MustParse(p.Versions[i-1]).Compare(v) >= 0 {
					t.Fatalf("%s versions %q: %v", name, p.Versions, err)
				}
				if rel, err := filepath.Rel("/r", ReleaseDir("/r", name, s)); err != nil || rel != filepath.Join(name, s) || strings.Count(rel, "/") != 1 {
					t.Fatalf("%s %s: release folder %s", name, s, rel)
				}
				if got, err := ix.Resolve(name, s); err != nil || got != s {
					t.Fatalf("Resolve(%s, %s) = %s, %v", name, s, got, err)
				}
			}
			for tag, v := range p.Tags {
				if got, err := ix.Resolve(name, tag); !tagRe.MatchString(tag) || err != nil || got != v || !contains(p.Versions, v) {
					t.Fatalf("%s tag %q: %s, %v", name, tag, got, err)
				}
			}
		}
		out, err := json.Marshal(ix)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parse(out)
		if err != nil || !reflect.DeepEqual(again, ix) {
			t.Fatalf("written back, the index reads %+v, %v", again, err)
		}
	})
}
