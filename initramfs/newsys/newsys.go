// Package newsys reaches into the new system passeur wrote, before the
// kernel knows its partition table: its partitions mounted through loop
// devices over their extents, the state partition's fstab, the ESP's boot
// entries rewritten to the PARTUUIDs the new table holds, the boot entry
// loaded for kexec, and the health report the new system leaves after its
// first boot.
//
// Mounting is behind Mounter, so that everything else here runs on a host
// against a disk that is a file.
package newsys

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/tree"
)

// Mounter mounts the filesystem lying in size bytes at start of the disk
// (a device, or a file) on dir; the returned function syncs, unmounts and
// releases what the mount held.
type Mounter interface {
	Mount(disk string, start, size int64, fstype, dir string, readOnly bool) (unmount func() error, err error)
}

// System is the new system on its disk.
type System struct {
	Disk  string // the target's device (or file)
	Job   *migrate.Job
	Mount Mounter
	// Dir is where its partitions are mounted, one folder each (state,
	// esp).
	Dir string
}

// Folders under Dir.
const (
	StateDir = "state"
	ESPDir   = "esp"
)

// Path is the folder under Dir a partition is mounted on.
func (s System) Path(name string) string { return filepath.Join(s.Dir, name) }

// MountState mounts the state partition on Dir/state: read-write for the
// run's writes, read-only (and without replaying its journal) to read what
// the new system left there.
func (s System) MountState(readOnly bool) (func() error, error) {
	st, ok := s.Job.Extent(s.Job.State)
	if !ok {
		return nil, errors.New("the layout has no state partition")
	}
	u, err := s.mount(st, "ext4", StateDir, readOnly)
	if err != nil {
		return nil, fmt.Errorf("mount the new system's state partition: %w", err)
	}
	return u, nil
}

// MountESP mounts the new system's EFI system partition on Dir/esp.
func (s System) MountESP(readOnly bool) (func() error, error) {
	for _, e := range s.Job.Extents {
		if g, _ := e.TypeGUID(); g == release.TypeGUIDs["esp"] {
			u, err := s.mount(e, "vfat", ESPDir, readOnly)
			if err != nil {
				return nil, fmt.Errorf("mount the new ESP: %w", err)
			}
			return u, nil
		}
	}
	return nil, errors.New("the layout has no EFI system partition")
}

func (s System) mount(e release.Extent, fstype, name string, readOnly bool) (func() error, error) {
	dir := s.Path(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return s.Mount.Mount(s.Disk, e.Start, e.Bytes, fstype, dir, readOnly)
}

// FstabHeader opens the fstab passeur writes in the new system.
const FstabHeader = "# Data volumes of the previous system, reattached by passeur.\n"

// WriteFstab writes entries as the state partition's etc/fstab.
func (s System) WriteFstab(entries []fstab.Entry) error {
	umount, err := s.MountState(false)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(FstabHeader)
	err = fstab.Write(&b, entries)
	dir := s.Path(StateDir)
	if err == nil {
		err = atomicfile.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	}
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(dir, "etc/fstab"), b.Bytes(), 0o644)
	}
	return errors.Join(err, umount())
}

// MaxHealth bounds the health report read from the new system.
const MaxHealth = 1 << 20

// ErrNoHealth means the new system left no health report (yet).
var ErrNoHealth = errors.New("the new system left no health report")

// Health reads the health report the new system left on its state
// partition, mounted read-only. It returns the report's bytes and whether
// it says ok; ErrNoHealth when there is none.
func (s System) Health() ([]byte, bool, error) {
	umount, err := s.MountState(true)
	if err != nil {
		return nil, false, err
	}
	var data []byte
	t, err := tree.Open(s.Path(StateDir), MaxHealth)
	if err == nil {
		data, err = t.ReadFile(strings.TrimPrefix(s.Job.Health, "/"))
		err = errors.Join(err, t.Close())
	}
	err = errors.Join(err, umount())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("%w (%s)", ErrNoHealth, s.Job.Health)
	}
	if err != nil {
		return nil, false, err
	}
	ok, err := HealthOK(data)
	if err != nil {
		return nil, false, fmt.Errorf("health report %s of the new system: %w", s.Job.Health, err)
	}
	return bytes.TrimSpace(data), ok, nil
}

// asciiLower lowers A to Z only, so that byte offsets stay the same.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// replaceFold replaces every occurrence of old in s, compared without
// regard to ASCII case (PARTUUIDs are written either way); other bytes,
// valid UTF-8 or not, are compared as they are.
func replaceFold(s, old, repl string) string {
	var b strings.Builder
	lower, lo := asciiLower(s), asciiLower(old)
	for {
		i := strings.Index(lower, lo)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i] + repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}
