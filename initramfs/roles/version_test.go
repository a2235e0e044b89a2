package roles

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/passeur/passeur/image/release"
)

func TestVersionOf(t *testing.T) {
	m := &release.Manifest{Recognize: release.Recognize{Files: []string{"/etc/camrec/camrec.conf"},
		VersionFile: "/etc/camrec/version", VersionRegexp: `^camrec ([0-9][0-9.]*)`}}
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  string
		err   error
	}{
		{"camrec 8.0.0", fstest.MapFS{"etc/camrec/camrec.conf": {}, "etc/camrec/version": {Data: []byte("camrec 8.0.0\n")}}, "8.0.0", nil},
		{"another product", fstest.MapFS{"etc/os-release": {Data: []byte("NAME=Debian\n")}}, "", nil},
		{"a file of the rules missing", fstest.MapFS{"etc/camrec/version": {Data: []byte("camrec 8.0.0\n")}}, "", nil},
		{"a version file that says none", fstest.MapFS{"etc/camrec/camrec.conf": {}, "etc/camrec/version": {Data: []byte("?\n")}}, "", ErrUnreadableVersion},
	} {
		got, err := VersionOf(tc.files, m)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: %q, %v; want %q, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
