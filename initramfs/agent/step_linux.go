package agent

import (
	"fmt"

	"github.com/passeur/passeur/initramfs/steps"
)

// step runs the journaled step name of run r, as the table in package steps
// describes it: skipped when the journal has it done, recorded begun, then
// done with fn's detail or failed with its error. A failure to write the
// journal is the media's; an error of fn is the media's only when the step
// writes the media, so that a failing target disk is never reported as a
// failing key.
func (a *Agent) step(r *run, name string, fn func() (any, error)) error {
	s, ok := steps.Of(name)
	if !ok {
		return fmt.Errorf("%w: step %q is not in the table of steps", ErrBug, name)
	}
	a.wroteSystem = a.wroteSystem || writing(r.j.Records)
	if _, done := r.j.Done(name); done {
		return nil
	}
	a.wroteSystem = a.wroteSystem || steps.WritesSystem(name)
	if err := r.j.Begin(name, nil); err != nil {
		return a.mediaErr(r, err)
	}
	detail, err := fn()
	if err != nil {
		err = a.stepErr(r, s, err)
		if jerr := r.j.Fail(name, err); jerr != nil {
			a.Log.Printf("journal: %v", a.mediaErr(r, jerr))
		}
		return err
	}
	return a.mediaErr(r, r.j.Complete(name, detail))
}

// stepErr names an error of step s: the media's when the step writes the
// media or the media is gone; otherwise as it is (a target disk's EIO is
// the target's).
func (a *Agent) stepErr(r *run, s steps.Step, err error) error {
	if s.Writes == steps.Media {
		return a.mediaErr(r, err)
	}
	return removed(r, err)
}
