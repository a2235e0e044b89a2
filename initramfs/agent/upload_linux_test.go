package agent

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/initramfs/event"
)

// TestSendBackup: a run's backup goes to the fleet server as a tar of its
// files, without the journal and the logs, which go on changing; what the
// server keeps is what was sent, and a server that keeps no backups is a
// named error, not a stop.
func TestSendBackup(t *testing.T) {
	store, err := fleet.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, "box-9", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	kept := t.TempDir()
	hs := httptest.NewServer(&fleet.Server{Store: store, Backups: kept})
	defer hs.Close()

	dir := filepath.Join(t.TempDir(), "2026-12-02T142443Z")
	files := map[string]string{"MANIFEST.json": `{"entries":[]}`, "SHA256SUMS": "…", "COMPLETE": "", "data/etc.tar.zst": strings.Repeat("x", 70000),
		"journal.jsonl": "{}\n", "console.log": "boot\n", "rollback/piece-0001": "raw bytes of the old disk"}
	for name, data := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
	var out bytes.Buffer
	a := &Agent{Console: &out, Events: event.NewEmitter(&out), Log: bufLog{&out}}
	a.Config.Report, a.Config.Box, a.Config.ReportToken = hs.URL+fleet.ReportPath, "box-9", token
	n, sum, why := a.sendBackup(dir, filepath.Base(dir))
	if why != "" || n == 0 || len(sum) != 64 {
		t.Fatalf("upload: %d bytes, %s, %q", n, sum, why)
	}
	f, err := os.Open(filepath.Join(kept, "box-9", filepath.Base(dir)+".tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			if string(data) != files[h.Name] {
				t.Errorf("%s: %d bytes kept, %d sent", h.Name, len(data), len(files[h.Name]))
			}
			names = append(names, h.Name)
		}
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "COMPLETE MANIFEST.json SHA256SUMS data/etc.tar.zst" {
		t.Errorf("the server keeps %v", names)
	}

	none := httptest.NewServer(&fleet.Server{Store: store})
	defer none.Close()
	a.Config.Report = none.URL + fleet.ReportPath
	if _, _, why := a.sendBackup(dir, filepath.Base(dir)); !strings.Contains(why, "keeps no backups") {
		t.Errorf("a server keeping none: %q", why)
	}
}
