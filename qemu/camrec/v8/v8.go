// Package v8 is camrec 8, the known-good release of the reference
// appliance: its formats (JSON configuration, v2 index), the conversion of
// a restored camrec 7 configuration and index, the format steps of the
// releases after 8.0.0 (steps.go: 8.1.0's index v3, 8.2.0's configuration
// format 3), the health check, and the two programs of its disk: the
// initrd's /init (camrec-init) and the service that is the root's
// /sbin/init (camrecd). One source builds every camrec 8 release; the
// version baked into camrecd says which steps it runs.
//
// The contract with passeur: the state partition (PARTLABEL "state", ext4)
// holds etc/fstab with the data volumes passeur reattached, and restore/
// with the backed-up v7 paths (restore/etc/camrec/camrec.conf,
// restore/var/lib/camrec/index/segments.v1) when the owner chose to keep
// them. A camrec 8 box's own configuration and index, backed up from its
// state partition, are taken from restore/camrec/ (config.json, and
// segments.v3 or index.v2.json), as they are on a state partition: what
// a migration from camrec 8 would restore (passeur does not make one yet).
package v8

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/initramfs/recovery/camrec/format"
	"github.com/passeur/passeur/qemu/camrec"
)

// Paths on the state partition.
const (
	ConfigFile = "camrec/config.json"
	IndexFile  = format.IndexV2File
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

// UpdateDir is the folder of the state partition that holds the box's
// enrolment for updates staged from the running system: update.json (the
// repository or mirror, the account, the fleet server: the key's
// passeur/config.json format), root.json (the repository's trusted
// root) and vendor.pub (the key releases are signed with).
const UpdateDir = "passeur"

// LegacyUpdateDir is where a camrec 7 box's vendor put its enrolment, on
// its root.
const LegacyUpdateDir = "etc/passeur"

// EnrolmentFiles are the files of UpdateDir: a migration carries them
// (the release's config paths), Convert takes them over.
var EnrolmentFiles = []string{"update.json", "root.json", "vendor.pub"}

// Convert takes over a configuration and index restored under
// state/restore, once: a camrec 8 box's (restore/camrec/, kept in the
// format it was in), else camrec 7's, converted to 8.0.0's formats. What the
// state holds already, in any format, is left alone, so a reboot, or a
// release whose steps converted them since, does not redo it. It reports
// what it did. The release's format steps (Upgrade) run after it.
func Convert(state string) ([]string, error) {
	var did []string
	restore := filepath.Join(state, RestoreDir)
	// The box's enrolment for updates comes with it, once: without it,
	// the new system would never hear of the next release, nor report
	// the outcome of the one that installed it.
	// A camrec 8's is on its state (restore/passeur), a camrec 7's where
	// its vendor put it (restore/etc/passeur).
	for _, from := range []string{UpdateDir, LegacyUpdateDir} {
		if exists(filepath.Join(state, UpdateDir, EnrolmentFiles[0])) || !exists(filepath.Join(restore, from, EnrolmentFiles[0])) {
			continue
		}
		// update.json last: it is what says the enrolment is there.
		for _, name := range append(slices.Clone(EnrolmentFiles[1:]), EnrolmentFiles[0]) {
			if p := filepath.Join(restore, from, name); exists(p) {
				if err := copyFile(p, filepath.Join(state, UpdateDir, name)); err != nil {
					return did, err
				}
			}
		}
		did = append(did, "update enrolment restored from "+from)
	}
	if !exists(filepath.Join(state, ConfigFile)) {
		if p := filepath.Join(restore, ConfigFile); exists(p) {
			_, format, err := readConfig(p)
			if err != nil {
				return did, fmt.Errorf("restored camrec 8 configuration: %w", err)
			}
			if err := copyFile(p, filepath.Join(state, ConfigFile)); err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf("configuration restored from camrec 8 (format %d)", format))
		} else if f, err := os.Open(filepath.Join(restore, camrec.ConfigV7File)); err == nil {
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
	if exists(filepath.Join(state, IndexFile)) || exists(filepath.Join(state, IndexV3File)) {
		return did, nil
	}
	if _, format, err := readIndex(restore); err != nil {
		return did, fmt.Errorf("restored camrec 8 index: %w", err)
	} else if format != 0 {
		name := map[int]string{IndexFormatV2: IndexFile, IndexFormatV3: IndexV3File}[format]
		if err := copyFile(filepath.Join(restore, name), filepath.Join(state, name)); err != nil {
			return did, err
		}
		return append(did, fmt.Sprintf("index restored from camrec 8 (v%d)", format)), nil
	}
	f, err := os.Open(filepath.Join(restore, camrec.IndexV1File))
	if err != nil {
		return did, nil
	}
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
	return append(did, fmt.Sprintf("index v1 -> v2 (%d segments)", len(idx))), nil
}

// copyFile copies a restored file into place, atomically.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(to, b, 0o644)
}

// Load reads camrec 8's configuration and index from the state partition,
// in whichever format each is (8.0.0's, or those of the later releases'
// steps); both are empty on a fresh install.
func Load(state string) (Config, []IndexEntry, error) {
	c, idx, _, err := load(state)
	return c, idx, err
}

// load is Load, and the formats it read.
func load(state string) (Config, []IndexEntry, Formats, error) {
	var f Formats
	c, cf, err := readConfig(filepath.Join(state, ConfigFile))
	if err != nil {
		return c, nil, f, err
	}
	idx, xf, err := readIndex(state)
	if err != nil {
		return c, nil, f, err
	}
	return c, idx, Formats{Config: cf, Index: xf}, nil
}

// Boot is what camrecd does on the state partition at every boot, once
// the data volumes are mounted (their UUIDs in volumes): take over what
// passeur restored (Convert), run the format steps of release ver and of
// the older ones (Upgrade), check every indexed segment, and write the
// health report (HealthFile). It returns the report and what it did.
func Boot(state, ver string, volumes []string) (Health, []string, error) {
	did, err := Convert(state)
	for i := range did {
		did[i] = "converted " + did[i]
	}
	if err != nil {
		return Health{}, did, err
	}
	steps, err := Upgrade(state, ver)
	did = append(did, steps...)
	if err != nil {
		return Health{}, did, err
	}
	c, idx, f, err := load(state)
	if err != nil {
		return Health{}, did, err
	}
	h, err := HealthOf(ver, f, Check(ver, c, idx, volumes))
	if err != nil {
		return Health{}, did, err
	}
	return h, did, writeJSON(filepath.Join(state, HealthFile), h)
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
