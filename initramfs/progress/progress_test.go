package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestReports(t *testing.T) {
	now := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	var reports []Report
	p := &Progress{Label: "write root", Out: &out, Every: time.Second, Now: func() time.Time { return now },
		Event: func(r Report) { reports = append(reports, r) }}
	p.Start(4 << 20)
	now = now.Add(500 * time.Millisecond)
	p.Add(1 << 20) // within the period: nothing said
	now = now.Add(500 * time.Millisecond)
	p.Add(1 << 20)
	now = now.Add(time.Second)
	p.Add(2 << 20)
	p.Finish()
	if len(reports) != 3 {
		t.Fatalf("%d reports: %+v", len(reports), reports)
	}
	if r := reports[0]; r.Done != 2<<20 || r.Rate != 2<<20 || r.ETA != 1 || r.Finished {
		t.Errorf("first report %+v, want 2 MiB done at 2 MiB/s, 1 s left", r)
	}
	if r := reports[2]; !r.Finished || r.Done != r.Total {
		t.Errorf("last report %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "write root: 2.0 MiB of 4.0 MiB, 2.0 MiB/s, 1 s left" || !strings.HasSuffix(lines[2], "done in 2.0 s") {
		t.Errorf("console lines %q", lines)
	}
	var none *Progress // a nil Progress reports nothing
	none.Start(1)
	none.Add(1)
	none.Finish()
}
