package fstab

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// ErrNotAMount is returned for a unit file with no What= and Where= in
// its [Mount] section.
var ErrNotAMount = errors.New("not a mount unit")

// ParseMountUnit reads a systemd .mount unit, the other way an old system
// mounts its volumes: What=, Where=, Type= and Options= of its [Mount]
// section, as an fstab entry.
func ParseMountUnit(r io.Reader) (Entry, error) {
	e := Entry{Type: "auto", Options: "defaults"}
	section := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			continue
		case section != "Mount":
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "What":
			e.Spec = val
		case "Where":
			e.Mountpoint = val
		case "Type":
			e.Type = val
		case "Options":
			e.Options = val
		}
	}
	if err := sc.Err(); err != nil {
		return Entry{}, err
	}
	if e.Spec == "" || e.Mountpoint == "" {
		return Entry{}, ErrNotAMount
	}
	return e, nil
}
