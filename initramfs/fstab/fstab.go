// Package fstab reads and writes /etc/fstab: the old system's, to find its
// data volumes, and the new system's, to reattach them.
package fstab

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Entry is one line of an fstab.
type Entry struct {
	Spec       string // UUID=..., LABEL=..., PARTUUID=..., PARTLABEL=..., or a path
	Mountpoint string
	Type       string
	Options    string
	Freq, Pass int
}

// Bounds on what Parse and ParseMountUnit read: the old system's files are
// not passeur's, and a real fstab is a few KiB.
const (
	maxFile    = 1 << 20
	maxLine    = 64 << 10
	maxEntries = 4096
)

// ErrTooLarge is returned for a file, a line or a number of entries past
// the bounds above.
var ErrTooLarge = errors.New("mount configuration too large")

// ErrInvalidEntry is returned by Write for an entry no fstab line can
// hold.
var ErrInvalidEntry = errors.New("entry cannot be written in fstab")

// Parse reads an fstab as libmount does: fields are separated by spaces
// and tabs, comments and blank lines are skipped, octal escapes (\040 for
// a space) are decoded in every field, and anything after the sixth field
// or a NUL byte is ignored. A missing or empty type or options field is
// auto or defaults.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	err := lines(r, func(n int, line string) error {
		if i := strings.IndexByte(line, 0); i >= 0 {
			line = line[:i] // where fstab's C readers see the line end
		}
		line = strings.Trim(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			return nil
		}
		f := fields(line)
		if len(f) < 2 {
			return fmt.Errorf("fstab line %d: %q has no mount point", n, line)
		}
		if len(out) == maxEntries {
			return fmt.Errorf("%w: fstab line %d: more than %d entries", ErrTooLarge, n, maxEntries)
		}
		e := Entry{Spec: unescape(f[0]), Mountpoint: unescape(f[1]), Type: "auto", Options: "defaults"}
		if e.Spec == "" || e.Mountpoint == "" {
			return fmt.Errorf("fstab line %d: %q has an empty device or mount point", n, line)
		}
		if len(f) > 2 {
			e.Type = cmp.Or(unescape(f[2]), e.Type)
		}
		if len(f) > 3 {
			e.Options = cmp.Or(unescape(f[3]), e.Options)
		}
		if len(f) > 4 {
			fmt.Sscanf(f[4], "%d", &e.Freq)
		}
		if len(f) > 5 {
			fmt.Sscanf(f[5], "%d", &e.Pass)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lines calls line for each line of r, numbered from 1, reading no more
// than maxFile bytes and no line longer than maxLine.
func lines(r io.Reader, line func(n int, s string) error) error {
	lr := &io.LimitedReader{R: r, N: maxFile + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if err := line(n, sc.Text()); err != nil {
			return err
		}
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return fmt.Errorf("%w: line %d longer than %d bytes", ErrTooLarge, n+1, maxLine)
	case err != nil:
		return err
	case lr.N == 0:
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxFile)
	}
	return nil
}

// fields splits line at runs of spaces and tabs, as libmount does (not
// at other Unicode spaces), into at most six fields.
func fields(line string) []string {
	var f []string
	for len(f) < 6 {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			break
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			i = len(line)
		}
		f = append(f, line[:i])
		line = line[i:]
	}
	return f
}

// Write writes entries in fstab format, every text field escaped. An empty
// type or options field is written as Parse reads a missing one: auto,
// defaults.
func Write(w io.Writer, entries []Entry) error {
	for i, e := range entries {
		if e.Spec == "" || e.Mountpoint == "" {
			return fmt.Errorf("%w: entry %d (%q on %q) has no device or no mount point", ErrInvalidEntry, i+1, e.Spec, e.Mountpoint)
		}
		typ, opts := cmp.Or(e.Type, "auto"), cmp.Or(e.Options, "defaults")
		for _, f := range []string{e.Spec, e.Mountpoint, typ, opts} {
			if strings.IndexByte(f, 0) >= 0 {
				return fmt.Errorf("%w: entry %d: %q holds a NUL byte, where fstab readers end the field", ErrInvalidEntry, i+1, f)
			}
		}
		if _, err := fmt.Fprintf(w, "%s %s %s %s %d %d\n", escape(e.Spec), escape(e.Mountpoint), escape(typ), escape(opts), e.Freq, e.Pass); err != nil {
			return err
		}
	}
	return nil
}
