package agent

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/initramfs/journal"
	"github.com/passeur/passeur/initramfs/steps"
)

// uploadEvent is the payload of the "upload" event.
type uploadEvent struct {
	URL    string `json:"url"`
	Run    string `json:"run"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Error  string `json:"error,omitempty"`
}

// uploadBackup sends the verified backup of a staged run to the box's
// fleet server, before the first destructive write: in the field too, a
// verified copy lies on another device. The server's SHA-256 of what it
// kept must be the one sent. A server that cannot be reached, or keeps no
// backups, is recorded and the run goes on: the staged release and the
// backup in the staging area are enough to migrate.
func (a *Agent) uploadBackup(r *run) error {
	c := a.Config
	if c.Staged.UUID == "" || !c.Reports() { // a staged run (passeur.staged=) that reports
		return nil
	}
	return a.step(r, steps.Upload, func() (any, error) {
		ev := uploadEvent{URL: c.Report, Run: filepath.Base(r.dir)}
		ev.Bytes, ev.SHA256, ev.Error = a.sendBackup(r.dir, ev.Run)
		if ev.Error != "" {
			a.Log.Printf("backup upload: %s: the run goes on, its backup in the staging area", ev.Error)
		} else {
			a.Log.Printf("backup %s uploaded to the fleet server: %d bytes, SHA-256 %s, as stored there", ev.Run, ev.Bytes, ev.SHA256)
		}
		a.Events.Emit("upload", ev)
		return map[string]any{"uploaded": ev.Error == "", "bytes": ev.Bytes, "sha256": ev.SHA256, "error": ev.Error}, nil
	})
}

// sendBackup sends the backup folder dir as a tar and returns its size
// and SHA-256, or why it was not stored as sent.
func (a *Agent) sendBackup(dir, run string) (int64, string, string) {
	var size int64
	if _, err := backupTar(dir, countWriter{&size}); err != nil {
		return 0, "", err.Error()
	}
	pr, pw := io.Pipe()
	h := sha256.New()
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, err := backupTar(dir, io.MultiWriter(h, pw))
		pw.CloseWithError(err)
	}()
	c := a.Config
	stored, err := wire.SendBackup(context.Background(), c.Report, c.ReportToken, run, pr, size)
	pr.CloseWithError(errors.New("upload over"))
	<-written // h is whole, and no one writes it any more
	sum := hex.EncodeToString(h.Sum(nil))
	switch {
	case err != nil:
		return size, sum, err.Error()
	case stored.Bytes != size || stored.SHA256 != sum:
		return size, sum, fmt.Sprintf("the server kept %d bytes of SHA-256 %s, not the %d bytes of %s sent", stored.Bytes, stored.SHA256, size, sum)
	}
	return size, sum, ""
}

// backupTar writes the backup in dir as a tar: its files, in the order
// WalkDir gives (the same twice), without the run's journal and logs,
// which go on changing, nor the rollback save beside it.
func backupTar(dir string, w io.Writer) (int64, error) {
	tw := tar.NewWriter(w)
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() && rel == saveDir {
			return filepath.SkipDir // the rollback save: raw regions of the old disk, not the backup
		}
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: filepath.ToSlash(rel) + "/", Mode: 0o755})
		}
		if !d.Type().IsRegular() || rel == journal.File || strings.HasSuffix(rel, ".log") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: filepath.ToSlash(rel), Mode: 0o644, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
			return err
		}
		m, err := io.CopyN(tw, f, st.Size())
		n += m
		return err
	})
	if err != nil {
		return n, err
	}
	return n, tw.Close()
}

// countWriter counts what is written to it.
type countWriter struct{ n *int64 }

func (c countWriter) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	return len(p), nil
}
