package format

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// IndexV1File is where camrec 7 keeps its recording index.
const IndexV1File = "/var/lib/camrec/index/segments.v1"

// ErrIndexCorrupt means the index fails its own consistency check.
var ErrIndexCorrupt = errors.New("camrec index is corrupt")

// Sort orders segments by camera, start and path: the index order.
func Sort(segs []Segment) {
	sort.Slice(segs, func(i, j int) bool {
		a, b := segs[i], segs[j]
		if a.Camera != b.Camera {
			return a.Camera < b.Camera
		}
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.Path < b.Path
	})
}

// WriteIndexV1 writes the v1 index: a header, one tab-separated line per
// segment (camera, start in Unix seconds, size, path), and a trailer with
// the count and the SHA-256 of everything before it.
func WriteIndexV1(w io.Writer, segs []Segment) error {
	segs = append([]Segment(nil), segs...)
	Sort(segs)
	var b bytes.Buffer
	b.WriteString("camrec-index v1\n")
	for _, s := range segs {
		fmt.Fprintf(&b, "%s\t%d\t%d\t%s\n", s.Camera, s.Start.Unix(), s.Size, s.Path)
	}
	sum := sha256.Sum256(b.Bytes())
	fmt.Fprintf(&b, "end %d %x\n", len(segs), sum)
	_, err := w.Write(b.Bytes())
	return err
}

// ParseIndexV1 reads a v1 index and checks its trailer.
func ParseIndexV1(r io.Reader) ([]Segment, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(data, []byte("camrec-index v1\n")) {
		return nil, fmt.Errorf("%w: no v1 header", ErrIndexCorrupt)
	}
	i := bytes.LastIndex(bytes.TrimSuffix(data, []byte("\n")), []byte("\nend "))
	if i < 0 {
		return nil, fmt.Errorf("%w: no trailer (truncated?)", ErrIndexCorrupt)
	}
	body, trailer := data[:i+1], strings.TrimSpace(string(data[i+1:]))
	var segs []Segment
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Scan() // header
	for n := 2; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: line %d has %d fields", ErrIndexCorrupt, n, len(f))
		}
		start, err1 := strconv.ParseInt(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: line %d: bad number", ErrIndexCorrupt, n)
		}
		segs = append(segs, Segment{Camera: f[0], Start: time.Unix(start, 0).UTC(), Size: size, Path: f[3]})
	}
	sum := sha256.Sum256(body)
	if want := fmt.Sprintf("end %d %x", len(segs), sum); trailer != want {
		return nil, fmt.Errorf("%w: trailer %q does not match the %d entries", ErrIndexCorrupt, trailer, len(segs))
	}
	return segs, nil
}
