package inventory

import (
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/tools/txtar"
)

// SysFS is the part of /sys the inventory reads. Paths are relative to the
// sysfs root ("block/vda/size"). DirSys reads a live /sys; Capture replays a
// recorded one, so the inventory logic is tested on real captures.
type SysFS interface {
	ReadFile(name string) ([]byte, error)
	ReadDir(name string) ([]string, error)
	ReadLink(name string) (string, error)
}

// DirSys is a SysFS over a directory, normally "/sys".
type DirSys string

func (d DirSys) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(path.Join(string(d), name))
}

func (d DirSys) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(path.Join(string(d), name))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, err
}

func (d DirSys) ReadLink(name string) (string, error) {
	return os.Readlink(path.Join(string(d), name))
}

// Recorder wraps a SysFS and remembers every answer it gave, so that a run
// on real hardware can be saved as a test case (passeur.debug=sysfs).
type Recorder struct {
	SysFS
	mu  sync.Mutex
	rec map[string]string
}

// NewRecorder records what is read through s.
func NewRecorder(s SysFS) *Recorder { return &Recorder{SysFS: s, rec: map[string]string{}} }

func (r *Recorder) note(kind, name, content string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec[kind+":"+name] = content
}

func (r *Recorder) ReadFile(name string) ([]byte, error) {
	b, err := r.SysFS.ReadFile(name)
	if err == nil {
		if printable(b) {
			r.note("file", name, string(b))
		} else {
			// Binary attributes (SCSI VPD pages) must survive JSON and txtar.
			r.note("file64", name, base64.StdEncoding.EncodeToString(b)+"\n")
		}
	}
	return b, err
}

func (r *Recorder) ReadDir(name string) ([]string, error) {
	n, err := r.SysFS.ReadDir(name)
	if err == nil {
		r.note("dir", name, strings.Join(n, "\n")+"\n")
	}
	return n, err
}

func (r *Recorder) ReadLink(name string) (string, error) {
	l, err := r.SysFS.ReadLink(name)
	if err == nil {
		r.note("link", name, l+"\n")
	}
	return l, err
}

// Archive returns what was recorded as a txtar archive.
func (r *Recorder) Archive() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := &txtar.Archive{Comment: []byte("sysfs capture by passeur.debug=sysfs\n")}
	var names []string
	for k := range r.rec {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a.Files = append(a.Files, txtar.File{Name: k, Data: []byte(r.rec[k])})
	}
	return txtar.Format(a)
}

// Capture is a SysFS replayed from a Recorder's archive.
type Capture map[string]string

// ParseCapture reads a Recorder's archive.
func ParseCapture(data []byte) Capture {
	c := Capture{}
	for _, f := range txtar.Parse(data).Files {
		c[f.Name] = string(f.Data)
	}
	return c
}

func (c Capture) get(kind, name string) (string, error) {
	v, ok := c[kind+":"+name]
	if !ok {
		return "", fmt.Errorf("%s %s: %w", kind, name, os.ErrNotExist)
	}
	return v, nil
}

func (c Capture) ReadFile(name string) ([]byte, error) {
	if v, err := c.get("file64", name); err == nil {
		return base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	}
	v, err := c.get("file", name)
	return []byte(v), err
}

// printable reports whether b is text that a txtar file holds as it is.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

func (c Capture) ReadDir(name string) ([]string, error) {
	v, err := c.get("dir", name)
	return strings.Fields(v), err
}

func (c Capture) ReadLink(name string) (string, error) {
	v, err := c.get("link", name)
	return strings.TrimSpace(v), err
}
