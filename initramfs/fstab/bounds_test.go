package fstab

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// TestEscapeEveryControlByte: a device or mount point holding any byte
// below 0x21, a backslash, '#' or DEL is written on one line of six
// fields, and reads back the same.
func TestEscapeEveryControlByte(t *testing.T) {
	var special []byte
	for c := byte(1); c < 0x21; c++ {
		special = append(special, c)
	}
	special = append(special, '\\', '#', 0x7F)
	for _, c := range special {
		e := Entry{Spec: "LABEL=x" + string(c), Mountpoint: "/srv/a" + string(c) + "b", Type: "ext4", Options: "defaults,nofail", Pass: 2}
		var b bytes.Buffer
		if err := Write(&b, []Entry{e}); err != nil {
			t.Fatalf("byte %#02x: %v", c, err)
		}
		line := strings.TrimSuffix(b.String(), "\n")
		if strings.ContainsFunc(line, func(r rune) bool { return r < 0x21 && r != ' ' }) || len(strings.Split(line, " ")) != 6 {
			t.Errorf("byte %#02x: written as %q", c, b.String())
		}
		back, err := Parse(&b)
		if err != nil || len(back) != 1 || back[0] != e {
			t.Errorf("byte %#02x: reads back as %+v, %v", c, back, err)
		}
	}
}

// TestWriteRefuses: what no fstab line can hold is refused by name; an
// empty type or options field is written as a missing one reads.
func TestWriteRefuses(t *testing.T) {
	for name, e := range map[string]Entry{
		"NUL in the mount point": {Spec: "UUID=1", Mountpoint: "/srv/a\x00/etc", Type: "ext4"},
		"NUL in the options":     {Spec: "UUID=1", Mountpoint: "/srv/a", Type: "ext4", Options: "defaults\x00"},
		"no mount point":         {Spec: "UUID=1", Type: "ext4"},
		"no device":              {Mountpoint: "/srv/a", Type: "ext4"},
	} {
		if err := Write(io.Discard, []Entry{e}); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: Write = %v, want ErrInvalidEntry", name, err)
		}
	}
	var b bytes.Buffer
	if err := Write(&b, []Entry{{Spec: "UUID=1", Mountpoint: "/srv/a"}}); err != nil || b.String() != "UUID=1 /srv/a auto defaults 0 0\n" {
		t.Errorf("empty type and options written as %q, %v", b.String(), err)
	}
}

// TestParseAsLibmount: fields split at spaces and tabs only; an escape is
// a backslash and three octal digits, nothing else; a decoded NUL ends
// the field, a raw one the line; a device or mount point empty once
// decoded is an error, an empty type or options field is the default.
func TestParseAsLibmount(t *testing.T) {
	for line, want := range map[string]string{
		"UUID=1 /srv/a\u00a0b ext4":                    "/srv/a\u00a0b", // no-break space
		"UUID=1 /srv/a\u0085b ext4":                    "/srv/a\u0085b", // next line
		"UUID=1 /srv/a\u2003b ext4":                    "/srv/a\u2003b", // em space
		`UUID=1 /srv/a\12x ext4`:                       `/srv/a\12x`,
		`UUID=1 /srv/a\-12 ext4`:                       `/srv/a\-12`,
		`UUID=1 /srv/a\0400 ext4`:                      "/srv/a 0",
		`UUID=1 /srv/a\134040 ext4`:                    `/srv/a\040`,
		`UUID=1 /srv/a\000/../etc ext4`:                "/srv/a",
		"UUID=1 /srv/a ext4 defaults 0 2 extra fields": "/srv/a",
		"UUID=1\v/srv/a ext4":                          "ext4", // a vertical tab separates nothing: the device is "UUID=1\v/srv/a"
		"  \tUUID=1\t \t/srv/a\t\t  ext4   defaults\r": "/srv/a",
	} {
		es, err := Parse(strings.NewReader(line + "\n"))
		got := ""
		if err == nil && len(es) == 1 {
			got = es[0].Mountpoint
		}
		if got != want {
			t.Errorf("%q: mount point %q (%+v, %v), want %q", line, got, es, err, want)
		}
	}
	for line, want := range map[string]Entry{
		"0 0 \x00":                          {"0", "0", "auto", "defaults", 0, 0}, // found by FuzzParse
		"UUID=1 /srv/a\x00/etc ext4 ro 0 2": {"UUID=1", "/srv/a", "auto", "defaults", 0, 0},
		`UUID=1 /srv/a \000 \000 0 2`:       {"UUID=1", "/srv/a", "auto", "defaults", 0, 2},
	} {
		if es, err := Parse(strings.NewReader(line + "\n")); err != nil || len(es) != 1 || es[0] != want {
			t.Errorf("%q: Parse = %+v, %v, want %+v", line, es, err, want)
		}
	}
	if _, err := Parse(strings.NewReader(`\000 /srv/a ext4` + "\n")); err == nil {
		t.Error("a device empty once decoded: want an error")
	}
}

// repeat is a reader of n bytes: s again and again.
func repeat(s string, n int64) io.Reader {
	return io.LimitReader(&repeater{s: s}, n)
}

type repeater struct {
	s string
	i int
}

func (r *repeater) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.s[r.i%len(r.s)]
		r.i++
	}
	return len(p), nil
}

// countReader counts the bytes read from r.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestParseBounds: an fstab or a mount unit past the bounds is refused by
// name, having read little past them and allocated little.
func TestParseBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   io.Reader
		unit bool
	}{
		{"16 MiB of comments", repeat("# a comment\n", 16<<20), false},
		{"2 MiB of entries", repeat("a /\n", 2<<20), false},
		{"4097 entries", repeat("UUID=1 /srv/a ext4 defaults 0 2\n", 4097*32), false},
		{"a line of 1 MiB", repeat("a", 1<<20), false},
		{"a unit of 16 MiB", io.MultiReader(strings.NewReader("[Mount]\nWhat=/dev/sda1\nWhere=/srv/a\n"), repeat("Options=noatime\n", 16<<20)), true},
		{"a unit line of 1 MiB", io.MultiReader(strings.NewReader("[Mount]\nWhere="), repeat("a", 1<<20)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &countReader{r: tc.in}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var err error
			if tc.unit {
				_, err = ParseMountUnit(c)
			} else {
				_, err = Parse(c)
			}
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("err = %v, want ErrTooLarge", err)
			}
			if c.n > maxFile+maxLine {
				t.Errorf("read %d bytes", c.n)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
				t.Errorf("allocated %d bytes", n)
			}
		})
	}
}
