package journal

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResumeAfterTornWrite(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "2026-11-23T100000Z")
	var emitted []string
	j, err := Create(filepath.Join(dir, File), Header{Mode: "backup", Machine: "serial CAMREC-SYS", Host: "camrec-a"})
	if err != nil {
		t.Fatal(err)
	}
	j.Emit = func(r Record) { emitted = append(emitted, r.Step+":"+r.State) }
	runs := 0
	step := func() (any, error) { runs++; return map[string]int{"files": 3}, nil }
	if _, err := j.Step("backup", step); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Step("verify", func() (any, error) { return nil, errors.New("read error") }); err == nil {
		t.Fatal("failed step returned no error")
	}
	j.Close()
	if len(emitted) != 4 || emitted[0] != "backup:begun" || emitted[3] != "verify:failed" {
		t.Errorf("emitted %v", emitted)
	}
	// The power goes while a line is written.
	f, _ := os.OpenFile(j.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte(`{"time":"2026-11-23T10:00:01Z","step":"ver`))
	f.Write(make([]byte, 100))
	f.Close()

	found, err := FindUnfinished(base, "backup", "serial CAMREC-SYS")
	if err != nil || found != dir {
		t.Fatalf("FindUnfinished = %q, %v", found, err)
	}
	if other, _ := FindUnfinished(base, "backup", "serial OTHER"); other != "" {
		t.Errorf("another machine's journal found: %s", other)
	}
	j, err = Open(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	if skipped, err := j.Step("backup", step); !skipped || err != nil || runs != 1 {
		t.Errorf("done step run again: skipped=%v err=%v runs=%d", skipped, err, runs)
	}
	if skipped, _ := j.Step("verify", func() (any, error) { return nil, nil }); skipped {
		t.Error("failed step skipped")
	}
	if err := j.Finish(map[string]string{"outcome": "ok"}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	recs, err := Read(j.Path)
	if err != nil {
		t.Fatal(err)
	}
	if recs[len(recs)-1].State != StateFinished || j.Header().Host != "camrec-a" {
		t.Errorf("records: %+v", recs)
	}
	for _, r := range recs {
		if r.State == StateResumed {
			goto resumed
		}
	}
	t.Error("no resumed record")
resumed:
	if found, _ := FindUnfinished(base, "backup", "serial CAMREC-SYS"); found != "" {
		t.Errorf("finished journal found as unfinished: %s", found)
	}
	// A line broken in the middle is corruption, not a torn end.
	data, _ := os.ReadFile(j.Path)
	data[10] = '{'
	os.WriteFile(j.Path, data, 0o644)
	if _, err := Read(j.Path); !errors.Is(err, ErrCorrupt) {
		t.Errorf("broken first line: %v", err)
	}
}

// FuzzParse: whatever a key holds as a journal, Parse never panics, and
// what it accepts re-encodes to a journal that parses to as many records.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	j, err := Create(filepath.Join(dir, "run", File), Header{Mode: "migrate", Machine: "serial CAMREC-SYS, gpt 0ddba11, root 1234", Host: "camrec-a", Release: "releases/camrec-8.0.0"})
	if err != nil {
		f.Fatal(err)
	}
	j.Step("plan", func() (any, error) {
		return map[string]any{"mode": "migrate", "target": map[string]any{"serial": "CAMREC-SYS", "size": 1 << 30}, "format_data": []any{map[string]any{"serial": "X"}}}, nil
	})
	j.Step("write root", func() (any, error) { return nil, errors.New("cut") })
	j.Close()
	real, err := os.ReadFile(filepath.Join(dir, "run", File))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(append(real[:len(real)-7:len(real)-7], "\x00\x00\x00"...)) // torn by a cut
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"step":"","state":"run"}` + "\n" + `{"step":"x","state":"done","detail":[1,2]}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, good, err := Parse(data)
		if err != nil {
			return
		}
		if good <= 0 || good > int64(len(data)) || len(recs) == 0 || recs[0].State != StateRun {
			t.Fatalf("accepted %d records up to %d of %d bytes", len(recs), good, len(data))
		}
		var again []byte
		for _, r := range recs {
			line, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			again = append(append(again, line...), '\n')
		}
		back, _, err := Parse(again)
		if err != nil || len(back) != len(recs) {
			t.Fatalf("re-encoded: %d records, %v; was %d", len(back), err, len(recs))
		}
	})
}

// A journal larger than MaxSize is refused unread, never loaded whole.
func TestJournalBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), File)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"step":"","state":"run"}` + "\n")
	f.Truncate(4 << 30) // a sparse 4 GiB "journal"
	f.Close()
	if _, err := Read(p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
}
