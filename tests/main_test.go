package tests

import (
	"os"
	"testing"
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
