package agent

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/passeur/passeur/image/atomicfile"
)

// runLog is the console as the agent writes it, kept from boot so that the
// whole run can be saved on the install media with its journal: held in
// memory until SaveTo gives it a file, then appended there as it goes.
type runLog struct {
	mu   sync.Mutex
	out  io.Writer
	buf  bytes.Buffer
	file *os.File
}

func (l *runLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Write(b) // the media may be gone; the console must go on
	} else if l.buf.Len() < 16<<20 {
		l.buf.Write(b)
	}
	return l.out.Write(b)
}

// SaveTo appends what was printed so far to path and everything after.
func (l *runLog) SaveTo(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := f.Write(l.buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	l.buf.Reset()
	l.file = f
	return f.Sync()
}

// Detach syncs and closes the file; what follows is kept in memory again.
func (l *runLog) Detach() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Sync()
	if cerr := l.file.Close(); err == nil {
		err = cerr
	}
	l.file = nil
	return err
}
