package v8

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/recovery/camrec/format"
	"github.com/passeur/passeur/qemu/camrec"
)

// The releases after 8.0.0 and the format step each brings. One source
// builds every camrec 8 release: the version the build bakes into camrecd
// (-X main.version) says which steps it runs, those of its own release and
// of every older one, in order, so that a box going 8.0.0 → 8.2.0 directly
// goes through both.
const (
	// IndexV3Since is the release whose first boot converts the index to
	// v3 (IndexV3File); from it on, the health report has index_format.
	IndexV3Since = "8.1.0"
	// ConfigV3Since is the release whose first boot converts the
	// configuration to format 3; from it on, the health report has
	// config_format.
	ConfigV3Since = "8.2.0"
)

// IndexV3File is the index 8.1.0 keeps, on the state partition: replaces
// 8.0.0's IndexFile (the v2 index, JSON) with a text index that checks
// itself, as camrec 7's v1 did: a truncated index is an error, not fewer
// segments.
const IndexV3File = format.IndexV3File

// The formats the health report names. camrec 7's INI configuration is
// format 1 and its segments.v1 index v1; 8.0.0's JSON files are format 2
// (its index is camrec/index.v2.json, hence v2).
const (
	IndexFormatV2  = 2
	IndexFormatV3  = 3
	ConfigFormatV2 = 2
	ConfigFormatV3 = 3
)

// Step is a format change a release makes on the state partition at boot.
// Run does it unless it is done (a boot after the first does nothing), and
// is safe to cut at any point: each file is replaced atomically and the
// old one removed only after the new one is on the disk. It returns what
// it did, "" when nothing.
type Step struct {
	Since string // the release that brings it
	Name  string
	Run   func(state string) (string, error)
}

// Steps are the format steps of camrec 8's releases, oldest first.
var Steps = []Step{
	{Since: IndexV3Since, Name: "index v2 -> v3", Run: IndexToV3},
	{Since: ConfigV3Since, Name: "configuration format 2 -> 3", Run: ConfigToV3},
}

// Upgrade runs, in order, the steps of release ver and of every older
// one, and reports what they did.
func Upgrade(state, ver string) ([]string, error) {
	var did []string
	for _, s := range Steps {
		ok, err := atLeast(ver, s.Since)
		if err != nil {
			return did, err
		}
		if !ok {
			continue
		}
		d, err := s.Run(state)
		if err != nil {
			return did, fmt.Errorf("%s (camrec %s): %w", s.Name, s.Since, err)
		}
		if d != "" {
			did = append(did, d)
		}
	}
	return did, nil
}

// atLeast reports whether version ver is since or later.
func atLeast(ver, since string) (bool, error) {
	v, err := version.Parse(ver)
	if err != nil {
		return false, fmt.Errorf("camrec version %q: %w", ver, err)
	}
	return v.Compare(version.MustParse(since)) >= 0, nil
}

// IndexToV3 is 8.1.0's step: the v2 index (JSON) becomes segments.v3, the
// same segments; on a state with no index at all (a fresh install), an
// empty v3 index is written, so that the box keeps its index in v3 from
// then on. A v2 index left beside a v3 one (a power cut between writing
// the one and removing the other) is removed: the v3 one was complete.
func IndexToV3(state string) (string, error) {
	v2, v3 := filepath.Join(state, IndexFile), filepath.Join(state, IndexV3File)
	if exists(v3) {
		if exists(v2) {
			return "", removeDurably(v2)
		}
		return "", nil
	}
	var idx []IndexEntry
	did := "index v3 created, empty"
	if exists(v2) {
		if err := readJSON(v2, &idx); err != nil {
			return "", err
		}
		did = fmt.Sprintf("index v2 -> v3 (%d segments)", len(idx))
	}
	b, err := MarshalIndexV3(idx)
	if err != nil {
		return "", err
	}
	if err := atomicfile.MkdirAll(filepath.Dir(v3), 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(v3, b, 0o644); err != nil {
		return "", err
	}
	if exists(v2) {
		if err := removeDurably(v2); err != nil {
			return "", err
		}
	}
	return did, nil
}

// MarshalIndexV3 renders the v3 index (format.MarshalIndexV3).
func MarshalIndexV3(idx []IndexEntry) ([]byte, error) {
	segs := make([]format.Segment, 0, len(idx))
	for _, e := range idx {
		segs = append(segs, format.Segment{Camera: e.Camera, Start: e.Start, Path: e.Path, Size: e.Size})
	}
	return format.MarshalIndexV3(segs)
}

// ParseIndexV3 reads a v3 index and checks its trailer (format.ParseIndexV3).
func ParseIndexV3(data []byte) ([]IndexEntry, error) {
	segs, err := format.ParseIndexV3(data)
	if err != nil {
		return nil, err
	}
	idx := make([]IndexEntry, 0, len(segs))
	for _, s := range segs {
		idx = append(idx, IndexEntry{Camera: s.Camera, Start: s.Start, Path: s.Path, Size: s.Size})
	}
	return idx, nil
}

// ConfigV3 is the configuration 8.2.0 keeps in ConfigFile: it names its
// format, its keys are lower case, and the retention is in a recording
// section.
type ConfigV3 struct {
	Format    int        `json:"format"` // ConfigFormatV3
	Site      string     `json:"site"`
	Recording Recording  `json:"recording"`
	Cameras   []CameraV3 `json:"cameras"`
}

// Recording is the recording section of ConfigV3.
type Recording struct {
	RetentionDays int `json:"retention_days"`
}

// CameraV3 is a camera of ConfigV3.
type CameraV3 struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
}

// ToV3 is c in format 3.
func (c Config) ToV3() ConfigV3 {
	v3 := ConfigV3{Format: ConfigFormatV3, Site: c.Site, Recording: Recording{RetentionDays: c.RetentionDays}, Cameras: []CameraV3{}}
	for _, cam := range c.Cameras {
		v3.Cameras = append(v3.Cameras, CameraV3{ID: cam.ID, Name: cam.Name, URL: cam.URL})
	}
	return v3
}

// Config is c as the service uses it, whatever the format on disk.
func (c ConfigV3) Config() Config {
	out := Config{Site: c.Site, RetentionDays: c.Recording.RetentionDays}
	for _, cam := range c.Cameras {
		out.Cameras = append(out.Cameras, camrec.Camera{ID: cam.ID, Name: cam.Name, URL: cam.URL})
	}
	return out
}

// ConfigToV3 is 8.2.0's step: the configuration in format 2 (8.0.0's)
// is rewritten in place in format 3, atomically; on a state with no
// configuration (a fresh install), an empty one in format 3 is written.
func ConfigToV3(state string) (string, error) {
	p := filepath.Join(state, ConfigFile)
	c, format, err := readConfig(p)
	if err != nil {
		return "", err
	}
	did := fmt.Sprintf("configuration format 2 -> 3 (%d cameras)", len(c.Cameras))
	switch format {
	case ConfigFormatV3:
		return "", nil
	case 0:
		did = "configuration format 3 created, empty"
	}
	return did, writeJSON(p, c.ToV3())
}

// readConfig reads the configuration at p in any format this release
// knows, and says which (0: there is none).
func readConfig(p string) (Config, int, error) {
	var c Config
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return c, 0, nil
	}
	if err != nil {
		return c, 0, err
	}
	var probe struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return c, 0, fmt.Errorf("%s: %w", p, err)
	}
	switch probe.Format {
	case 0: // 8.0.0's format 2 does not name itself
		if err := json.Unmarshal(b, &c); err != nil {
			return c, 0, fmt.Errorf("%s: %w", p, err)
		}
		return c, ConfigFormatV2, nil
	case ConfigFormatV3:
		var v3 ConfigV3
		if err := json.Unmarshal(b, &v3); err != nil {
			return c, 0, fmt.Errorf("%s: %w", p, err)
		}
		return v3.Config(), ConfigFormatV3, nil
	}
	return c, 0, fmt.Errorf("%s: configuration format %d is not one this camrec knows (2, 3)", p, probe.Format)
}

// readIndex reads the index on the state in any format this release
// knows, and says which (0: there is none).
func readIndex(state string) ([]IndexEntry, int, error) {
	if b, err := os.ReadFile(filepath.Join(state, IndexV3File)); err == nil {
		idx, err := ParseIndexV3(b)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", IndexV3File, err)
		}
		return idx, IndexFormatV3, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, err
	}
	p := filepath.Join(state, IndexFile)
	if !exists(p) {
		return nil, 0, nil
	}
	var idx []IndexEntry
	if err := readJSON(p, &idx); err != nil {
		return nil, 0, err
	}
	return idx, IndexFormatV2, nil
}

// Formats are the formats of the configuration and of the index on a
// state partition; 0 where there is none.
type Formats struct {
	Config, Index int
}

// Detect says in which formats the state keeps its configuration and
// index.
func Detect(state string) (Formats, error) {
	_, _, f, err := load(state)
	return f, err
}

// Health is camrec 8's health report: 8.0.0's (camrec.Report, which
// passeur and the tests read) and, from the release that brings each
// format step on, the format its step left. Both are omitted when zero,
// so that 8.0.0's report is the same to the byte as it always was.
type Health struct {
	camrec.Report
	// IndexFormat is the index's format (IndexFormatV3 once 8.1.0's step
	// ran); reported from 8.1.0 on.
	IndexFormat int `json:"index_format,omitempty"`
	// ConfigFormat is the configuration's format (ConfigFormatV3 once
	// 8.2.0's step ran); reported from 8.2.0 on.
	ConfigFormat int `json:"config_format,omitempty"`
}

// HealthOf is the health report release ver gives: r, with the formats f
// of the steps ver has.
func HealthOf(ver string, f Formats, r camrec.Report) (Health, error) {
	h := Health{Report: r}
	for _, s := range []struct {
		since string
		field *int
		value int
	}{{IndexV3Since, &h.IndexFormat, f.Index}, {ConfigV3Since, &h.ConfigFormat, f.Config}} {
		ok, err := atLeast(ver, s.since)
		if err != nil {
			return h, err
		}
		if ok {
			*s.field = s.value
		}
	}
	return h, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// removeDurably removes p and syncs its folder.
func removeDurably(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(p))
}
