package fstab

import (
	"errors"
	"io"
	"strings"
)

// ErrNotAMount is returned for a unit file with no What= and Where= in
// its [Mount] section.
var ErrNotAMount = errors.New("not a mount unit")

// ParseMountUnit reads a systemd .mount unit, the other way an old system
// mounts its volumes: What=, Where=, Type= and Options= of its [Mount]
// section, as an fstab entry. It reads no more than an fstab may hold.
func ParseMountUnit(r io.Reader) (Entry, error) {
	e := Entry{Type: "auto", Options: "defaults"}
	section := ""
	err := lines(r, func(_ int, line string) error {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			return nil
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			return nil
		case section != "Mount":
			return nil
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil
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
		return nil
	})
	if err != nil {
		return Entry{}, err
	}
	if e.Spec == "" || e.Mountpoint == "" {
		return Entry{}, ErrNotAMount
	}
	return e, nil
}
