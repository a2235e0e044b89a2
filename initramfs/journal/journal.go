// Package journal records, on the install media, every step of a run begun
// and done with what it checked, one JSON line per record, each synced
// before the step goes on. After a power cut the next boot finds the
// unfinished journal of its machine and resumes from the last step done:
// steps are idempotent, and a step begun but not done is simply run again.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
)

// File is the journal's name in a run's folder.
const File = "journal.jsonl"

// States of a record.
const (
	StateRun      = "run"      // the first record: the run's header
	StateBegun    = "begun"    // a step started
	StateDone     = "done"     // a step ended well; Detail says what it checked
	StateFailed   = "failed"   // a step ended in error; the run may resume
	StateResumed  = "resumed"  // a boot took the run up again
	StateFinished = "finished" // the run is over; Detail gives the outcome
)

// ErrCorrupt is returned for a journal that cannot be read back.
var ErrCorrupt = errors.New("journal is corrupt")

// Record is one line of the journal.
type Record struct {
	Time   time.Time       `json:"time"`
	Step   string          `json:"step,omitempty"`
	State  string          `json:"state"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Header is the first record's detail: what the run is and for which
// machine.
type Header struct {
	Mode    string `json:"mode"`
	Machine string `json:"machine"` // the system disk's identity and root filesystem
	Host    string `json:"host"`
	Release string `json:"release,omitempty"`
}

// Journal is an open journal, appended to.
type Journal struct {
	Path    string
	Records []Record
	// Emit, when set, is called after each record is on the media: the
	// agent turns it into an event (tests pick their power cuts there).
	Emit func(Record)
	Now  func() time.Time
	f    *os.File
}

// Create starts the journal of a new run at path.
func Create(path string, h Header) (*Journal, error) {
	if err := atomicfile.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	j := &Journal{Path: path, f: f}
	if err := j.append("", StateRun, h); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// Open takes up the journal at path: its records are read, a torn last
// line (the power went while it was written) is cut off, and a resumed
// record is appended.
func Open(path string) (*Journal, error) {
	recs, good, err := read(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return takeUp(f, path, recs, good)
}

// OpenFile is Open of a journal already open for reading and writing (f,
// opened through an os.Root): the journal is f's from then on.
func OpenFile(f *os.File) (*Journal, error) {
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrCorrupt, f.Name(), MaxSize)
	}
	recs, good, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return takeUp(f, f.Name(), recs, good)
}

// takeUp cuts f, the journal at path, after its last whole record (good)
// and appends a resumed record.
func takeUp(f *os.File, path string, recs []Record, good int64) (*Journal, error) {
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return nil, err
	}
	j := &Journal{Path: path, Records: recs, f: f}
	return j, j.append("", StateResumed, map[string]int{"records": len(recs)})
}

// Read returns the records of the journal at path.
func Read(path string) ([]Record, error) {
	recs, _, err := read(path)
	return recs, err
}

// MaxSize bounds a journal: far more than any run writes (a record per
// step begun and done), far less than the rescue's memory.
const MaxSize = 16 << 20

// read reads the journal at path, bounded, and parses it.
func read(path string) ([]Record, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, 0, err
	}
	if len(data) > MaxSize {
		return nil, 0, fmt.Errorf("%w: %s: larger than %d bytes", ErrCorrupt, path, MaxSize)
	}
	recs, good, err := Parse(data)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return recs, good, nil
}

// Parse parses a journal's bytes and returns its records and the offset
// after its last whole record: a line torn by a power cut at the end is
// left out, a bad line before the end is ErrCorrupt, and so is a journal
// without its run header.
func Parse(data []byte) ([]Record, int64, error) {
	var recs []Record
	var good int64
	for len(data[good:]) > 0 {
		rest := data[good:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break // torn: the line never got its end
		}
		var r Record
		if err := json.Unmarshal(rest[:i], &r); err != nil {
			if len(bytes.Trim(rest, "\x00\n")) == 0 || bytes.IndexByte(rest[i+1:], '\n') < 0 {
				break // torn: zeros or a partial line at the end
			}
			return nil, 0, fmt.Errorf("%w: line %d: %v", ErrCorrupt, len(recs)+1, err)
		}
		recs = append(recs, r)
		good += int64(i + 1)
	}
	if len(recs) == 0 || recs[0].State != StateRun {
		return nil, 0, fmt.Errorf("%w: no run header", ErrCorrupt)
	}
	return recs, good, nil
}

func (j *Journal) append(step, state string, detail any) error {
	r := Record{Step: step, State: state}
	if j.Now != nil {
		r.Time = j.Now().UTC()
	} else {
		r.Time = time.Now().UTC()
	}
	if detail != nil {
		d, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		r.Detail = d
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.Records = append(j.Records, r)
	if j.Emit != nil {
		j.Emit(r)
	}
	return nil
}

// Header returns the run's header.
func (j *Journal) Header() Header {
	var h Header
	json.Unmarshal(j.Records[0].Detail, &h)
	return h
}

// Done returns the detail of the last done record of step, if it is done.
func (j *Journal) Done(step string) (json.RawMessage, bool) {
	return DoneIn(j.Records, step)
}

// Began reports whether step was ever begun in recs.
func Began(recs []Record, step string) bool {
	for _, r := range recs {
		if r.Step == step && r.State == StateBegun {
			return true
		}
	}
	return false
}

// DoneIn returns the detail of the last done record of step in recs (a
// journal read, not opened), if it is done.
func DoneIn(recs []Record, step string) (json.RawMessage, bool) {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Step == step && recs[i].State == StateDone {
			return recs[i].Detail, true
		}
	}
	return nil, false
}

// Resumed reports whether a boot took the run up again.
func (j *Journal) Resumed() bool {
	for _, r := range j.Records {
		if r.State == StateResumed {
			return true
		}
	}
	return false
}

// Finished reports whether the run is over.
func (j *Journal) Finished() bool { return finished(j.Records) }

func finished(recs []Record) bool {
	return len(recs) > 0 && recs[len(recs)-1].State == StateFinished
}

// Begin records that step starts.
func (j *Journal) Begin(step string, detail any) error { return j.append(step, StateBegun, detail) }

// Complete records that step is done and what it checked.
func (j *Journal) Complete(step string, detail any) error { return j.append(step, StateDone, detail) }

// Fail records that step failed.
func (j *Journal) Fail(step string, err error) error {
	return j.append(step, StateFailed, map[string]string{"error": err.Error()})
}

// Note records something learnt during step.
func (j *Journal) Note(step string, detail any) error { return j.append(step, "note", detail) }

// Finish records the end of the run.
func (j *Journal) Finish(outcome any) error { return j.append("", StateFinished, outcome) }

// Step runs fn as step unless the journal already has it done, in which
// case it returns the recorded detail and skipped. fn's detail is recorded
// with done; its error with failed.
func (j *Journal) Step(step string, fn func() (any, error)) (skipped bool, err error) {
	if _, ok := j.Done(step); ok {
		return true, nil
	}
	if err := j.Begin(step, nil); err != nil {
		return false, err
	}
	detail, err := fn()
	if err != nil {
		if jerr := j.Fail(step, err); jerr != nil {
			return false, errors.Join(err, jerr)
		}
		return false, err
	}
	return false, j.Complete(step, detail)
}

// Close closes the journal's file.
func (j *Journal) Close() error { return j.f.Close() }

// FindUnfinished returns the folder of the newest run under dir (one
// folder per run) of mode whose journal is for machine and is not finished.
func FindUnfinished(dir, mode, machine string) (string, error) {
	runs, err := Unfinished(filepath.Join(dir, "*"))
	for _, r := range runs {
		if r.Header.Machine == machine && r.Header.Mode == mode {
			return r.Dir, nil
		}
	}
	return "", err
}

// Run is a run found unfinished on the media.
type Run struct {
	Dir     string
	Header  Header
	Records []Record
}

// Unfinished lists the run folders matching glob whose journal is not
// finished, newest (greatest folder name) first. Folders without a
// readable journal are not runs.
func Unfinished(glob string) ([]Run, error) { return runs(glob, false) }

// All lists the run folders matching glob, finished or not, newest first.
func All(glob string) ([]Run, error) { return runs(glob, true) }

func runs(glob string, all bool) ([]Run, error) {
	dirs, err := filepath.Glob(glob)
	if err != nil {
		return nil, err
	}
	sort.Slice(dirs, func(a, b int) bool { return filepath.Base(dirs[a]) > filepath.Base(dirs[b]) })
	var out []Run
	for _, d := range dirs {
		recs, err := Read(filepath.Join(d, File))
		if err != nil || len(recs) == 0 || !all && finished(recs) {
			continue
		}
		var h Header
		json.Unmarshal(recs[0].Detail, &h)
		out = append(out, Run{Dir: d, Header: h, Records: recs})
	}
	return out, nil
}
