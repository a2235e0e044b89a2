// Package v8 is camrec 8, the known-good release of the reference
// appliance: its formats (JSON configuration, v2 index), the conversion of
// a restored camrec 7 configuration and index, the health check, and the
// two programs of its disk: the initrd's /init (camrec-init) and the
// service that is the root's /sbin/init (camrecd).
//
// The contract with passeur: the state partition (PARTLABEL "state", ext4)
// holds etc/fstab with the data volumes passeur reattached, and restore/
// with the backed-up v7 paths (restore/etc/camrec/camrec.conf,
// restore/var/lib/camrec/index/segments.v1) when the owner chose to keep
// them.
package v8

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/qemu/camrec"
)

// Paths on the state partition.
const (
	ConfigFile = "camrec/config.json"
	IndexFile  = "camrec/index.v2.json"
	HealthFile = "camrec/health.json"
	FstabFile  = "etc/fstab"
	RestoreDir = "restore"
)

// Config is camrec 8's configuration.
type Config struct {
	Site          string          `json:"site"`
	RetentionDays int             `json:"retention_days"`
	Cameras       []camrec.Camera `json:"cameras"`
}

// IndexEntry is one segment in the v2 index.
type IndexEntry struct {
	Camera string    `json:"camera"`
	Start  time.Time `json:"start"`
	Path   string    `json:"path"`
	Size   int64     `json:"size"`
}

// Convert turns a restored camrec 7 configuration and v1 index under
// state/restore into camrec 8's files, once: files already converted are
// left alone, so a reboot does not redo it. It reports what it did.
func Convert(state string) ([]string, error) {
	var did []string
	restore := filepath.Join(state, RestoreDir)
	if _, err := os.Stat(filepath.Join(state, ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		f, err := os.Open(filepath.Join(restore, camrec.ConfigV7File))
		if err == nil {
			c7, perr := camrec.ParseConfigV7(f)
			f.Close()
			if perr != nil {
				return did, fmt.Errorf("convert v7 configuration: %w", perr)
			}
			if err := writeJSON(filepath.Join(state, ConfigFile), Config{Site: c7.Site, RetentionDays: c7.RetentionDays, Cameras: c7.Cameras}); err != nil {
				return did, err
			}
			did = append(did, "configuration v7 -> v8")
		}
	}
	if _, err := os.Stat(filepath.Join(state, IndexFile)); errors.Is(err, fs.ErrNotExist) {
		f, err := os.Open(filepath.Join(restore, camrec.IndexV1File))
		if err == nil {
			segs, perr := camrec.ParseIndexV1(f)
			f.Close()
			if perr != nil {
				return did, fmt.Errorf("convert v1 index: %w", perr)
			}
			idx := make([]IndexEntry, 0, len(segs))
			for _, s := range segs {
				idx = append(idx, IndexEntry{Camera: s.Camera, Start: s.Start, Path: s.Path, Size: s.Size})
			}
			if err := writeJSON(filepath.Join(state, IndexFile), idx); err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf("index v1 -> v2 (%d segments)", len(idx)))
		}
	}
	return did, nil
}

// Load reads camrec 8's configuration and index from the state partition;
// both are empty on a fresh install.
func Load(state string) (Config, []IndexEntry, error) {
	var c Config
	var idx []IndexEntry
	if err := readJSON(filepath.Join(state, ConfigFile), &c); err != nil {
		return c, nil, err
	}
	if err := readJSON(filepath.Join(state, IndexFile), &idx); err != nil {
		return c, nil, err
	}
	return c, idx, nil
}

// Check builds the health report: every indexed segment must exist with
// its size; volumes are the UUIDs of the data volumes mounted.
func Check(version string, c Config, idx []IndexEntry, volumes []string) camrec.Report {
	r := camrec.Report{Product: "camrec", Version: version, Cameras: len(c.Cameras), SegmentsIndexed: len(idx), Volumes: append([]string{}, volumes...)}
	sort.Strings(r.Volumes)
	for _, e := range idx {
		st, err := os.Stat(e.Path)
		if err != nil || st.Size() != e.Size {
			r.SegmentsMissing++
			continue
		}
		r.Bytes += e.Size
	}
	r.OK = r.SegmentsMissing == 0
	return r
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON writes v as indented JSON, atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}
