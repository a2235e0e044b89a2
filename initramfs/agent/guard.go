package agent

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/initramfs/roles"
)

// ErrBug is a panic of passeur's own code, recovered: PID 1 reports it and
// stays up, since a PID 1 that dies takes the kernel with it and tells
// nobody anything.
var ErrBug = errors.New("passeur stopped on a bug")

// loggedPanic is a panic value whose stack was already written in the
// run's log on the media (by closeRun, while the media was mounted).
type loggedPanic struct{ value any }

// guard runs f, turning a panic into ErrBug with the panic's value; the
// stack goes to the console (and, while a run is open, to its log on the
// media, see closeRun) before the deferred calls of f's callers unwind it.
func (a *Agent) guard(f func() error) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if l, ok := p.(loggedPanic); ok {
			p = l.value
		} else {
			a.logPanic(p, debug.Stack())
		}
		err = fmt.Errorf("%w: %v (the stack is in the console log)", ErrBug, p)
	}()
	return f()
}

// logPanic writes a recovered panic and its stack on the console.
func (a *Agent) logPanic(p any, stack []byte) {
	a.Log.Printf("BUG: panic: %v", p)
	fmt.Fprintf(a.Console, "%s\n", stack)
}

// debugPanic panics when passeur.debug=panic asks it to, in the mode, so
// that a test can prove PID 1 survives its own bugs.
func (a *Agent) debugPanic(where string) {
	if a.Config.HasDebug("panic") {
		panic("passeur.debug=panic in " + where)
	}
}

// offerAfterBug says what is left after a bug: the disks are as the run's
// journal says (a migration cut there is taken up at the next boot, or
// rolled back), and, attended, offers the shell or powering off.
func (a *Agent) offerAfterBug() {
	a.Log.Printf("the disks are as the journal on the media says: the next boot from the key takes an unfinished run up, passeur.mode=rollback puts a migrated system back")
	a.Events.Emit("choices", map[string]any{"reason": ErrBug.Error(), "modes": []config.Mode{config.ModeShell, config.ModePoweroff}})
	if a.Config.Unattended {
		return
	}
	choices := []config.Mode{config.ModeShell, config.ModePoweroff, config.ModeWait}
	i, err := roles.NewConsole(os.Stdin, a.Console).Ask(ErrBug, "What now?", []string{"a shell on this console", "power off", "wait"})
	if err != nil {
		a.Log.Printf("%v", err)
		return
	}
	a.Config.Mode = choices[i]
}
