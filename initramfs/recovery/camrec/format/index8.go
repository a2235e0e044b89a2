package format

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// camrec 8 keeps its index on its state partition, in the format of the
// release that last converted it: 8.0.0's v2 (JSON), 8.1.0's v3 (text
// that checks itself). The paths are relative to the state partition.
const (
	IndexV2File = "camrec/index.v2.json"
	IndexV3File = "camrec/segments.v3"
)

const indexV3Header = "camrec-index v3\n"

// MarshalIndexV3 renders the v3 index: a header, one tab-separated line per
// segment (camera, start in RFC 3339 UTC, size, path) in index order
// (camera, start, path), and a trailer with the count and the SHA-256 of
// everything before it.
func MarshalIndexV3(segs []Segment) ([]byte, error) {
	segs = append([]Segment(nil), segs...)
	Sort(segs)
	var b bytes.Buffer
	b.WriteString(indexV3Header)
	for _, e := range segs {
		if e.Camera == "" || strings.ContainsAny(e.Camera, "\t\n") || e.Path == "" || strings.ContainsAny(e.Path, "\t\n") {
			return nil, fmt.Errorf("index v3 cannot hold camera %q, path %q (empty, or a tab or newline in it)", e.Camera, e.Path)
		}
		fmt.Fprintf(&b, "%s\t%s\t%d\t%s\n", e.Camera, e.Start.UTC().Format(time.RFC3339Nano), e.Size, e.Path)
	}
	sum := sha256.Sum256(b.Bytes())
	fmt.Fprintf(&b, "end %d %x\n", len(segs), sum)
	return b.Bytes(), nil
}

// ParseIndexV3 reads a v3 index and checks its trailer.
func ParseIndexV3(data []byte) ([]Segment, error) {
	if !bytes.HasPrefix(data, []byte(indexV3Header)) {
		return nil, fmt.Errorf("%w: no v3 header", ErrIndexCorrupt)
	}
	i := bytes.LastIndex(bytes.TrimSuffix(data, []byte("\n")), []byte("\nend "))
	if i < 0 || !bytes.HasSuffix(data, []byte("\n")) {
		return nil, fmt.Errorf("%w: no trailer (truncated?)", ErrIndexCorrupt)
	}
	body, trailer := data[:i+1], strings.TrimSuffix(string(data[i+1:]), "\n")
	segs := []Segment{}
	sc := bufio.NewScanner(bytes.NewReader(body[len(indexV3Header):]))
	sc.Buffer(nil, 1<<20)
	for n := 2; sc.Scan(); n++ {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: line %d has %d fields", ErrIndexCorrupt, n, len(f))
		}
		start, err1 := time.Parse(time.RFC3339Nano, f[1])
		size, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || size < 0 {
			return nil, fmt.Errorf("%w: line %d: bad start or size", ErrIndexCorrupt, n)
		}
		if f[0] == "" || f[3] == "" {
			return nil, fmt.Errorf("%w: line %d: empty camera or path", ErrIndexCorrupt, n)
		}
		segs = append(segs, Segment{Camera: f[0], Start: start.UTC(), Size: size, Path: f[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexCorrupt, err)
	}
	if want := fmt.Sprintf("end %d %x", len(segs), sha256.Sum256(body)); trailer != want {
		return nil, fmt.Errorf("%w: trailer %q does not match the %d entries", ErrIndexCorrupt, trailer, len(segs))
	}
	return segs, nil
}

// ParseIndexV2 reads 8.0.0's JSON index: an array of segments. It has no
// check of its own beyond being whole JSON of that shape.
func ParseIndexV2(data []byte) ([]Segment, error) {
	var entries []struct {
		Camera string    `json:"camera"`
		Start  time.Time `json:"start"`
		Path   string    `json:"path"`
		Size   int64     `json:"size"`
	}
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("[")) {
		return nil, fmt.Errorf("%w: not a JSON array", ErrIndexCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the index", ErrIndexCorrupt)
	}
	segs := make([]Segment, 0, len(entries))
	for n, e := range entries {
		if e.Camera == "" || e.Path == "" || e.Size < 0 || e.Start.IsZero() {
			return nil, fmt.Errorf("%w: entry %d: camera %q, path %q, start %s, size %d", ErrIndexCorrupt, n, e.Camera, e.Path, e.Start, e.Size)
		}
		segs = append(segs, Segment{Camera: e.Camera, Start: e.Start.UTC(), Path: e.Path, Size: e.Size})
	}
	return segs, nil
}
