package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passeur/passeur/board"
)

// Artifacts are the files build.sh built for a board.
type Artifacts struct {
	Board          *board.Board
	Kernel, Initrd string
}

// BuiltArtifacts finds what build.sh built for board: under $PASSEUR_OUT
// (build.sh test sets it) or <repo>/out. Without them the test is skipped,
// unless $PASSEUR_REQUIRE_VM is set (build.sh test sets it) and it fails.
func BuiltArtifacts(t testing.TB, boardName string) Artifacts {
	t.Helper()
	b, err := board.Load(boardName)
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("PASSEUR_OUT")
	if out == "" {
		wd, _ := os.Getwd()
		for d := wd; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				out = filepath.Join(d, "out")
				break
			}
		}
	}
	a := Artifacts{Board: b, Kernel: filepath.Join(out, boardName, "vmlinuz"), Initrd: filepath.Join(out, boardName, "initramfs.cpio.zst")}
	for _, f := range []string{a.Kernel, a.Initrd} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("PASSEUR_REQUIRE_VM") != "" {
				t.Fatalf("%v: run ./build.sh first", err)
			}
			t.Skipf("%v: run ./build.sh first (or ./build.sh test)", err)
		}
	}
	return a
}

// Test starts a VM for a test and stops it when the test ends, whatever
// happens; on failure the end of the console is logged.
func Test(t testing.TB, o Options) *VM {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	vm, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Stop()
		if t.Failed() {
			c := vm.Console()
			if len(c) > 6000 {
				c = "...\n" + c[len(c)-6000:]
			}
			t.Logf("console of the VM:\n%s", strings.TrimSpace(c))
		}
	})
	return vm
}
