// Package format holds the on-disk formats of camrec, the reference
// appliance: segment files, the v7 configuration, the v1 recording index,
// the health report. It imports nothing of passeur, so that the rescue's
// index recovery links the formats without the fixtures that build v7
// systems or the tools that build camrec 8.
package format

import (
	"fmt"
	"math/rand"
	"path"
	"strconv"
	"strings"
	"time"
)

// SegmentDuration is how much video one segment file holds.
const SegmentDuration = time.Minute

// Segment is one recording file.
type Segment struct {
	Camera string
	Start  time.Time // UTC
	// Path is the file's path on the recorder: mount point of its volume,
	// then <camera>/<YYYY-MM-DD>/<HH>/seg-<NN>.cr.
	Path string
	Size int64
}

// RelPath returns the segment's path relative to its volume.
func RelPath(camera string, start time.Time) string {
	start = start.UTC()
	return fmt.Sprintf("%s/%s/%02d/seg-%02d.cr", camera, start.Format("2006-01-02"), start.Hour(), start.Minute())
}

// ParseRelPath reads camera and start time back from a path relative to a
// volume; it is how a lost index is rebuilt from the recordings.
func ParseRelPath(rel string) (camera string, start time.Time, err error) {
	parts := strings.Split(path.Clean(rel), "/")
	if len(parts) != 4 || !strings.HasPrefix(parts[3], "seg-") || !strings.HasSuffix(parts[3], ".cr") {
		return "", time.Time{}, fmt.Errorf("camrec: %q is not <camera>/<day>/<hour>/seg-<minute>.cr", rel)
	}
	day, err := time.Parse("2006-01-02", parts[1])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("camrec: %q: day: %w", rel, err)
	}
	hour, herr := strconv.Atoi(parts[2])
	minute, merr := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(parts[3], "seg-"), ".cr"))
	if herr != nil || merr != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 || len(parts[2]) != 2 {
		return "", time.Time{}, fmt.Errorf("camrec: %q: bad hour or minute", rel)
	}
	if parts[0] == "" {
		return "", time.Time{}, fmt.Errorf("camrec: %q: no camera", rel)
	}
	return parts[0], day.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute), nil
}

// Content returns a segment's bytes: a header naming it, then pseudo-random
// bytes from seed, so that every fixture is the same at every run.
func Content(camera string, start time.Time, size int64, seed int64) []byte {
	b := make([]byte, size)
	h := fmt.Sprintf("CAMREC-SEG1 %s %d\n", camera, start.Unix())
	r := rand.New(rand.NewSource(seed ^ start.Unix() ^ int64(len(camera))<<40 ^ int64(camera[len(camera)-1])<<48))
	r.Read(b)
	copy(b, h)
	return b
}
