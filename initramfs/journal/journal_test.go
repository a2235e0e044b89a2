package journal

import (
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
