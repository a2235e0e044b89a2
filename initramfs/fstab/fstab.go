// Package fstab reads and writes /etc/fstab: the old system's, to find its
// data volumes, and the new system's, to reattach them.
package fstab

import (
	"bufio"
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

// Parse reads an fstab. Comments and blank lines are skipped; octal escapes
// (\040 for a space) are decoded.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("fstab line %d: %q has no mount point", n, line)
		}
		e := Entry{Spec: unescape(f[0]), Mountpoint: unescape(f[1]), Type: "auto", Options: "defaults"}
		if len(f) > 2 {
			e.Type = f[2]
		}
		if len(f) > 3 {
			e.Options = f[3]
		}
		if len(f) > 4 {
			fmt.Sscanf(f[4], "%d", &e.Freq)
		}
		if len(f) > 5 {
			fmt.Sscanf(f[5], "%d", &e.Pass)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Write writes entries in fstab format.
func Write(w io.Writer, entries []Entry) error {
	for _, e := range entries {
		if _, err := fmt.Fprintf(w, "%s %s %s %s %d %d\n", escape(e.Spec), escape(e.Mountpoint), e.Type, e.Options, e.Freq, e.Pass); err != nil {
			return err
		}
	}
	return nil
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func escape(s string) string {
	return strings.NewReplacer(" ", `\040`, "\t", `\011`, "\\", `\134`).Replace(s)
}
