package agent

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/passeur/passeur/initramfs/event"
)

// A panic inside an open run is logged once, by closeRun while the run's
// log is still on the media, and still reaches guard.
func TestCloseRunLogsPanicOnce(t *testing.T) {
	var out bytes.Buffer
	a := &Agent{Console: &out, Events: event.NewEmitter(&out), Log: bufLog{&out}}
	err := a.guard(func() error {
		defer a.closeRun(nil)
		panic("in a run")
	})
	if !errors.Is(err, ErrBug) || !strings.Contains(err.Error(), "in a run") {
		t.Fatalf("guard returned %v", err)
	}
	if n := strings.Count(out.String(), "BUG: panic"); n != 1 {
		t.Errorf("the panic was logged %d times:\n%s", n, out.String())
	}
}
