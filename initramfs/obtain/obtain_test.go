package obtain

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/repo"
)

// TestMirrorFirst: a box waits while its mirror does not hold the hop it
// would take, or its fleet halted the rollout the box would join; a
// repository without mirror.json (the vendor's) holds all it lists.
func TestMirrorFirst(t *testing.T) {
	record := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+mirror.File || record == "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(record))
	}))
	defer srv.Close()
	acme := repo.Box{Account: "acme"}
	for _, tc := range []struct {
		name, record string
		r            Route
		box          repo.Box
		want         error
	}{
		{"the vendor's repository", "", Route{Want: "8.1.0", Next: "8.1.0"}, acme, nil},
		{"the mirror holds it", `{"format":1,"account":"acme","default":"8.1.0","versions":["8.0.0","8.1.0"]}`, Route{Want: "8.1.0", Next: "8.1.0"}, acme, nil},
		{"the mirror is behind", `{"format":1,"account":"acme","default":"8.0.0","versions":["8.0.0"]}`, Route{Want: "8.1.0", Next: "8.1.0"}, acme, mirror.ErrBehind},
		{"the first hop is held", `{"format":1,"account":"acme","default":"8.2.0","versions":["8.1.0","8.2.0"]}`, Route{Want: "8.2.0", Next: "8.1.0"}, acme, nil},
		{"the rollout is halted", `{"format":1,"account":"acme","default":"8.1.0","versions":["8.0.0","8.1.0"],"halted":true}`, Route{Want: "8.1.0", Next: "8.1.0"}, acme, mirror.ErrBehind},
		{"halted, but a test box", `{"format":1,"account":"acme","default":"8.1.0","versions":["8.0.0","8.1.0"],"halted":true}`, Route{Want: "8.1.0", Next: "8.1.0"}, repo.Box{Account: "acme", Tag: "test-8.1"}, nil},
		{"a record of another format", `{"format":2,"versions":["8.1.0"]}`, Route{Want: "8.1.0", Next: "8.1.0"}, acme, errAny},
		{"a version that is a path", `{"format":1,"versions":["../../etc"]}`, Route{Want: "8.1.0", Next: "8.1.0"}, acme, errAny},
	} {
		record = tc.record
		err := mirrorFirst(context.Background(), Options{Repo: srv.URL, State: t.TempDir(), Fetch: fetch.Options{Attempts: 1}}, tc.r, tc.box)
		switch {
		case tc.want == errAny && err == nil, tc.want != errAny && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

var errAny = errors.New("any error")

func TestPlaceholder(t *testing.T) {
	for id, want := range map[string]bool{
		"": true, "00000000-0000-0000-0000-000000000000": true, "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF": true,
		"03000200-0400-0500-0006-000700080009": true, "To be filled by O.E.M.": true, "Default string": true,
		"4c4c4544-0042-3510-8052-b4c04f4e5931": false, "CZC1234XYZ": false,
	} {
		if got := Placeholder(id); got != want {
			t.Errorf("%q: placeholder %v, want %v", id, got, want)
		}
	}
}
