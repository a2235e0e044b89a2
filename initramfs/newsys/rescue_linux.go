package newsys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/atomicfile"
	"golang.org/x/sys/unix"
)

// The rescue a staged run lays on the new ESP, for systemd-boot to start
// once after a power cut while the rescue writes the system disk.
const (
	RescueEntry  = "passeur-rescue.conf" // in loader/entries
	RescueFolder = "passeur"             // its kernel and initramfs
)

// ErrNoLoader: the new ESP holds no systemd-boot entries folder; the
// firmware's loader is not one passeur can leave an entry to.
var ErrNoLoader = errors.New("the new ESP holds no loader/entries (not systemd-boot)")

// ErrESPFull: no room on the new ESP for the rescue.
var ErrESPFull = errors.New("no room on the new ESP for the rescue")

// slackESP is kept free on the ESP beside the rescue.
const slackESP = 1 << 20

// AddRescue lays, on the ESP mounted at esp, the rescue's kernel and
// initramfs under RescueFolder and a systemd-boot entry starting them with
// cmdline, the entry last: what the boot loader starts once the rescue
// set its one-shot entry (efivar). Nothing is written when the ESP holds
// no loader/entries or has no room for both files.
func AddRescue(esp string, kernel, initrd []byte, cmdline string) error {
	entries := filepath.Join(esp, "loader", "entries")
	if st, err := os.Lstat(entries); err != nil || !st.IsDir() {
		return ErrNoLoader
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(esp, &sfs); err != nil {
		return err
	}
	free := int64(sfs.Bavail) * sfs.Bsize
	if need := int64(len(kernel)+len(initrd)) + slackESP; free < need {
		return fmt.Errorf("%w: %d bytes free, %d needed", ErrESPFull, free, need)
	}
	if strings.ContainsAny(cmdline, "\n\r") {
		return fmt.Errorf("the rescue's command line holds a line break")
	}
	dir := filepath.Join(esp, RescueFolder)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"vmlinuz": kernel, "initramfs.cpio.zst": initrd} {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	entry := "title passeur rescue (taking up a staged update)\n" +
		"linux /" + path.Join(RescueFolder, "vmlinuz") + "\n" +
		"initrd /" + path.Join(RescueFolder, "initramfs.cpio.zst") + "\n" +
		"options " + cmdline + "\n"
	if err := atomicfile.WriteFile(filepath.Join(entries, RescueEntry), []byte(entry), 0o644); err != nil {
		return err
	}
	return atomicfile.SyncDir(entries)
}

// RemoveRescue takes the rescue off the ESP mounted at esp, the entry
// first; what is not there is not an error.
func RemoveRescue(esp string) error {
	if _, err := os.Lstat(filepath.Join(esp, "loader", "entries")); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err := os.Remove(filepath.Join(esp, "loader", "entries", RescueEntry))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(filepath.Join(esp, RescueFolder)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Join(esp, "loader", "entries"))
}
