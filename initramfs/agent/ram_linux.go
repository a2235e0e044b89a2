package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/migrate"
	"golang.org/x/sys/unix"
)

// ErrMigrateNeedsMedia refuses a migration with no install media: its
// backup of the old system must outlive the migration.
var ErrMigrateNeedsMedia = errors.New("a migration keeps the verified backup of the old system and its journal on install media, which must outlive the migration: plug in a passeur key (a netbooted migration uses it too)")

const ramDir = "/run/passeur/ram"

// ramMediaEvent is the payload of the "media" event of media made in RAM.
type ramMediaEvent struct {
	Device string `json:"device"`
	Bytes  int64  `json:"bytes"`
	RAM    bool   `json:"ram"`
}

// ramMedia makes install media in RAM, for an install netbooted with no
// key: a FAT filesystem in a tmpfs file, on a loop device, carrying the
// marker, and returns disks with it. The release is downloaded into it and
// the run's journal and console log are kept there, as on a key; they are
// gone at power-off (an install cut by a power loss starts anew: the disk
// it writes gets its partition table last, so it still looks blank). Half
// the machine's memory is offered; a release that does not fit fails its
// download as on a full key.
func (a *Agent) ramMedia(disks []inventory.Disk) ([]inventory.Disk, error) {
	total, err := memTotal()
	if err != nil {
		return disks, err
	}
	size := total / 2 &^ (1<<20 - 1)
	if err := os.MkdirAll(ramDir, 0o755); err != nil {
		return disks, err
	}
	if err := unix.Mount("tmpfs", ramDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size+1<<20)); err != nil {
		return disks, fmt.Errorf("media in RAM: mount tmpfs: %w", err)
	}
	img := filepath.Join(ramDir, "media.fat")
	files := []fat.File{{Path: "/" + medialayout.Marker, Data: []byte(medialayout.MarkerData)}}
	if err := fat.Make(img, size, "PASSEUR-RAM", files, []string{"/" + medialayout.BackupDir, "/" + medialayout.ReleasesDir}, time.Now()); err != nil {
		return disks, fmt.Errorf("media in RAM: %w", err)
	}
	loop, err := migrate.AttachLoop(img, 0, size, false)
	if err != nil {
		return disks, fmt.Errorf("media in RAM: %w", err)
	}
	a.ram = loop // held: the loop device goes when its last user closes it
	d, err := inventory.Describe(inventory.DirSys("/sys"), openDevice, filepath.Base(loop.Path))
	if err != nil {
		return disks, fmt.Errorf("media in RAM: %w", err)
	}
	a.Log.Printf("no install media: the release goes to media made in RAM, %s of %s (its journal and log are lost at power-off)", inventory.HumanSize(size), loop.Path)
	a.Events.Emit("media", ramMediaEvent{Device: loop.Path, Bytes: size, RAM: true})
	return append(disks, d), nil
}

// memTotal is the machine's memory in bytes, from /proc/meminfo.
func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
}
