package tests

import (
	"os"
	"testing"
	"time"
)

// scratch is a folder for what tests of this run share (the camrec release
// is built once); it is removed when the run ends.
var scratch string

func TestMain(m *testing.M) {
	var err error
	scratch, err = os.MkdirTemp("", "passeur-tests-")
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(scratch)
	os.Exit(code)
}

// longOnly skips t but in ./build.sh test-long (PASSEUR_LONG): the default
// run leaves it to what proves the same branch faster, named in why.
func longOnly(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("PASSEUR_LONG") == "" {
		t.Skip("test-long only: " + why)
	}
}

// sample picks n of the cases for the default run, spread over them and
// shifted from one day to the next so that successive runs cover them
// all, in their order; ./build.sh test-long (PASSEUR_LONG) runs them all.
func sample[T any](t *testing.T, n int, all []T) []T {
	if os.Getenv("PASSEUR_LONG") != "" || n >= len(all) {
		return all
	}
	off := time.Now().YearDay()
	pick := map[int]bool{}
	for i := 0; i < n; i++ {
		pick[(off+i*len(all)/n)%len(all)] = true
	}
	var out []T
	var which []int
	for i, c := range all {
		if pick[i] {
			out, which = append(out, c), append(which, i)
		}
	}
	t.Logf("default run: cases %v of %d (PASSEUR_LONG=1 runs them all)", which, len(all))
	return out
}
