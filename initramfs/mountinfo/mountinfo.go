// Package mountinfo reads the kernel's table of mounts,
// /proc/self/mountinfo (proc(5)): what is mounted where, from which
// device, and how.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is a line of the table.
type Mount struct {
	Dev      string // major:minor
	Root     string // the mounted folder of the filesystem: "/" for all of it
	Point    string
	ReadOnly bool
	Type     string
}

// Parse reads a mountinfo table.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo: malformed line %q", sc.Text())
		}
		out = append(out, Mount{Dev: f[2], Root: unescape(f[3]), Point: unescape(f[4]),
			ReadOnly: slices.Contains(strings.Split(f[5], ","), "ro"), Type: f[sep+1]})
	}
	return out, sc.Err()
}

// Read reads this process's mounts.
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Whole returns where the filesystem of the block device dev is mounted
// whole, or "" when it is not.
func Whole(dev string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s: not a block device", dev)
	}
	majmin := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	mounts, err := Read()
	if err != nil {
		return "", err
	}
	for _, m := range mounts {
		if m.Dev == majmin && m.Root == "/" {
			return m.Point, nil
		}
	}
	return "", nil
}

// unescape undoes the table's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
