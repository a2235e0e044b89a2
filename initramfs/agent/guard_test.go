package agent

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/passeur/passeur/initramfs/event"
)

type bufLog struct{ b *bytes.Buffer }

func (l bufLog) Printf(format string, a ...any) { l.b.WriteString(strings.TrimSpace(format) + "\n") }

func TestGuardRecoversPanics(t *testing.T) {
	var out bytes.Buffer
	a := &Agent{Console: &out, Events: event.NewEmitter(&out), Log: bufLog{&out}}
	var xs []int
	err := a.guard(func() error { return errors.New("plain") })
	if err == nil || errors.Is(err, ErrBug) {
		t.Fatalf("a plain error: %v", err)
	}
	err = a.guard(func() error { _ = xs[3]; return nil })
	if !errors.Is(err, ErrBug) || !strings.Contains(err.Error(), "index out of range") {
		t.Fatalf("a panic: %v", err)
	}
	if !strings.Contains(out.String(), "guard_test.go") {
		t.Errorf("the stack does not name where it panicked:\n%s", out.String())
	}
	out.Reset()
	err = a.guard(func() error { panic(loggedPanic{"already written"}) })
	if !errors.Is(err, ErrBug) || !strings.Contains(err.Error(), "already written") || strings.Contains(out.String(), "goroutine") {
		t.Fatalf("a panic already logged: %v, printed %q", err, out.String())
	}
}
