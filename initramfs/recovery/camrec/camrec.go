// Package camrec registers the recording-index recovery of camrec, the
// reference appliance: its segment files are named
// <camera>/<YYYY-MM-DD>/<HH>/seg-<MM>.cr under each recording volume and
// begin with a header naming camera and start; its v1 index lists them.
package camrec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/passeur/passeur/initramfs/recovery"
	"github.com/passeur/passeur/initramfs/recovery/camrec/format"
)

func init() { recovery.Register("camrec", Indexer{}) }

// Indexer is camrec's index recovery.
type Indexer struct {
	// Workers read segment headers in parallel (default: 4 per CPU).
	Workers int
}

// indexes are where camrec keeps its index, newest format first: camrec
// 8's on its state partition (which an installed system's files show laid
// over its root, see roles), camrec 7's in its root.
var indexes = []struct {
	path  string
	parse func([]byte) ([]format.Segment, error)
}{
	{format.IndexV3File, format.ParseIndexV3},
	{format.IndexV2File, format.ParseIndexV2},
	{strings.TrimPrefix(format.IndexV1File, "/"), func(b []byte) ([]format.Segment, error) { return format.ParseIndexV1(bytes.NewReader(b)) }},
}

// Check reads the newest index the system holds (v3, v2 or v1) and checks
// it: its trailer for v3 and v1, its shape for v2.
func (Indexer) Check(root fs.FS) error {
	var names []string
	for _, ix := range indexes {
		data, err := fs.ReadFile(root, ix.path)
		if errors.Is(err, fs.ErrNotExist) {
			names = append(names, "/"+ix.path)
			continue
		}
		if err != nil {
			return err
		}
		if _, err := ix.parse(data); err != nil {
			return &recovery.CorruptError{Path: "/" + ix.path, Err: err}
		}
		return nil
	}
	return fmt.Errorf("%w: none of %s", recovery.ErrMissing, strings.Join(names, ", "))
}

// candidate is a file whose name parses as a segment.
type candidate struct {
	vol int
	rel string
	seg format.Segment
	err string
}

// Rebuild walks every volume, keeps the files whose name and header agree
// as segments, and writes the v1 index of them.
func (ix Indexer) Rebuild(vols []recovery.Volume) ([]recovery.File, recovery.Report, error) {
	start := time.Now()
	rep := recovery.Report{Product: "camrec", Volumes: len(vols)}
	var cands []candidate
	for vi, v := range vols {
		err := fs.WalkDir(v.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				rep.Rejected = append(rep.Rejected, recovery.Rejected{Path: v.Mountpoint + "/" + p, Reason: err.Error()})
				if d != nil && d.IsDir() && p != "." {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if p == "lost+found" {
					return fs.SkipDir
				}
				return nil
			}
			full := v.Mountpoint + "/" + p
			if !d.Type().IsRegular() {
				rep.Rejected = append(rep.Rejected, recovery.Rejected{Path: full, Reason: "not a regular file"})
				return nil
			}
			cam, t, err := format.ParseRelPath(p)
			if err != nil {
				rep.Rejected = append(rep.Rejected, recovery.Rejected{Path: full, Reason: "name: " + err.Error()})
				return nil
			}
			cands = append(cands, candidate{vol: vi, rel: p, seg: format.Segment{Camera: cam, Start: t, Path: full}})
			return nil
		})
		if err != nil {
			return nil, rep, fmt.Errorf("camrec: scan %s: %w", v.Mountpoint, err)
		}
	}
	ix.checkHeaders(vols, cands)
	var segs []format.Segment
	cameras := map[string]bool{}
	for _, c := range cands {
		if c.err != "" {
			rep.Rejected = append(rep.Rejected, recovery.Rejected{Path: c.seg.Path, Reason: c.err})
			continue
		}
		segs = append(segs, c.seg)
		cameras[c.seg.Camera] = true
		rep.Bytes += c.seg.Size
		if rep.First.IsZero() || c.seg.Start.Before(rep.First) {
			rep.First = c.seg.Start
		}
		if end := c.seg.Start.Add(format.SegmentDuration); end.After(rep.Last) {
			rep.Last = end
		}
	}
	rep.Cameras, rep.Segments = len(cameras), len(segs)
	sort.Slice(rep.Rejected, func(i, j int) bool { return rep.Rejected[i].Path < rep.Rejected[j].Path })
	var b bytes.Buffer
	if err := format.WriteIndexV1(&b, segs); err != nil {
		return nil, rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return []recovery.File{{Path: format.IndexV1File, Data: b.Bytes(), Mode: 0o644}}, rep, nil
}

// checkHeaders opens each candidate in parallel, takes its size and reads
// its first line: a segment's header names its camera and start, as its
// path does. (The walk itself reads folders only, as find does.)
func (ix Indexer) checkHeaders(vols []recovery.Volume, cands []candidate) {
	workers := ix.Workers
	if workers <= 0 {
		workers = 4 * runtime.NumCPU()
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 96)
			for i := range next {
				c := &cands[i]
				want := fmt.Sprintf("CAMREC-SEG1 %s %d\n", c.seg.Camera, c.seg.Start.Unix())
				f, err := vols[c.vol].FS.Open(c.rel)
				if err != nil {
					c.err = "unreadable: " + err.Error()
					continue
				}
				info, serr := f.Stat()
				n, err := io.ReadFull(f, buf[:len(want)])
				f.Close()
				switch {
				case serr != nil:
					c.err = "unreadable: " + serr.Error()
				case err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
					c.err = "unreadable: " + err.Error()
				case string(buf[:n]) != want:
					c.err = fmt.Sprintf("header %q does not name this segment", strings.TrimSpace(string(buf[:n])))
				default:
					c.seg.Size = info.Size()
				}
			}
		}()
	}
	for i := range cands {
		next <- i
	}
	close(next)
	wg.Wait()
}
