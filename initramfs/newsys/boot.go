package newsys

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/initramfs/tree"
)

// ErrBootPath refuses to write a table under which the new system's boot
// path would not find its partitions.
var ErrBootPath = errors.New("the new system's boot path does not hold")

// Bounds on what is read of the new ESP.
const (
	maxEntry    = 64 << 10  // a boot entry file
	maxESPFile  = 128 << 20 // any file (a unified kernel image), looking for old PARTUUIDs
	maxESPTotal = 512 << 20 // all of them
)

// EntriesDir is where Boot Loader Specification entries lie on an ESP.
const EntriesDir = "loader/entries"

// RewriteBootEntries makes the Boot Loader Specification entries on the
// new ESP name the partitions by the PARTUUIDs the new table gives them,
// where the table cannot hold the release's own (an MBR: Job.BootUUIDs).
// It fails with ErrBootPath when a file of the ESP still names one of the
// old PARTUUIDs afterwards. It returns the entries it changed.
func (s System) RewriteBootEntries() ([]string, error) {
	umount, err := s.MountESP(false)
	if err != nil {
		return nil, err
	}
	changed, err := rewriteEntries(s.Path(ESPDir), s.Job.BootUUIDs)
	return changed, errors.Join(err, umount())
}

func rewriteEntries(esp string, uuids map[string]string) ([]string, error) {
	t, err := tree.Open(esp, maxESPFile)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	ents, err := t.ReadDir(EntriesDir)
	if err != nil {
		return nil, fmt.Errorf("the new ESP's boot entries: %w", err)
	}
	var changed []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		name := path.Join(EntriesDir, e.Name())
		data, err := t.ReadFile(name)
		if err == nil && len(data) > maxEntry {
			err = fmt.Errorf("%s is larger than %d bytes", name, maxEntry)
		}
		if err != nil {
			return nil, err
		}
		text := string(data)
		for from, to := range uuids {
			text = replaceFold(text, "PARTUUID="+from, "PARTUUID="+to)
		}
		if text == string(data) {
			continue
		}
		if err := atomicfile.WriteFile(filepath.Join(esp, name), []byte(text), 0o644); err != nil {
			return nil, err
		}
		changed = append(changed, e.Name())
	}
	return changed, noneLeft(t, uuids)
}

// noneLeft fails when a file of the ESP esp still names one of the
// release's PARTUUIDs that the table will not hold (a unified kernel
// image's command line, a by-partuuid path): the new system would not
// find its partitions, and the table must not be written.
func noneLeft(esp *tree.FS, uuids map[string]string) error {
	var total int64
	return fs.WalkDir(esp, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := esp.ReadFile(p)
		if err != nil {
			return err
		}
		if total += int64(len(data)); total > maxESPTotal {
			return fmt.Errorf("the new ESP holds more than %d bytes of files", maxESPTotal)
		}
		lower := asciiLower(string(data))
		for old := range uuids {
			if strings.Contains(lower, asciiLower(old)) {
				return fmt.Errorf("%w: %s on the new ESP still names PARTUUID %s, which the MBR cannot hold: the new system would not find its partitions", ErrBootPath, p, old)
			}
		}
		return nil
	})
}

// HealthOK reads the verdict of a health report: its boolean "ok".
func HealthOK(data []byte) (bool, error) {
	var verdict struct {
		OK *bool `json:"ok"`
	}
	if err := json.Unmarshal(data, &verdict); err != nil || verdict.OK == nil {
		return false, fmt.Errorf("no boolean \"ok\" (%v)", err)
	}
	return *verdict.OK, nil
}
