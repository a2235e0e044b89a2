// Package progress reports a long operation's bytes done, rate and time
// left: as plain lines on the console (a serial console is not a terminal
// to redraw), and as events. Backups, restores, image writes and rollback
// saves report through it.
package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/passeur/passeur/initramfs/inventory"
)

// Progress reports bytes done, rate and time left as plain lines, at most
// one per Every (a serial console is not a terminal to redraw). A nil
// *Progress reports nothing.
type Progress struct {
	Label string
	Out   io.Writer
	// Event, when set, receives each report (the agent emits it).
	Event func(Report)
	Every time.Duration // default 1 s
	Now   func() time.Time

	total, done int64
	start, last time.Time
}

// Report is one progress report.
type Report struct {
	Label    string  `json:"label"`
	Done     int64   `json:"done"`
	Total    int64   `json:"total"`
	Rate     float64 `json:"rate"` // bytes per second
	ETA      float64 `json:"eta"`  // seconds
	Finished bool    `json:"finished,omitempty"`
}

func (p *Progress) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Start begins a count of total bytes.
func (p *Progress) Start(total int64) {
	if p == nil {
		return
	}
	p.total, p.done = total, 0
	p.start = p.now()
	p.last = p.start
}

// Add counts n more bytes done.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.done += n
	every := p.Every
	if every == 0 {
		every = time.Second
	}
	if now := p.now(); now.Sub(p.last) >= every {
		p.last = now
		p.report(false)
	}
}

// Finish reports the end.
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	p.report(true)
}

func (p *Progress) report(finished bool) {
	el := p.now().Sub(p.start).Seconds()
	r := Report{Label: p.Label, Done: p.done, Total: p.total, Finished: finished}
	if el > 0 {
		r.Rate = float64(p.done) / el
	}
	if r.Rate > 0 {
		r.ETA = float64(p.total-p.done) / r.Rate
	}
	if p.Out != nil {
		line := fmt.Sprintf("%s: %s of %s, %s/s", p.Label, inventory.HumanSize(r.Done), inventory.HumanSize(r.Total), inventory.HumanSize(int64(r.Rate)))
		if finished {
			line += fmt.Sprintf(", done in %.1f s", el)
		} else {
			line += fmt.Sprintf(", %.0f s left", r.ETA)
		}
		fmt.Fprintln(p.Out, line)
	}
	if p.Event != nil {
		p.Event(r)
	}
}
