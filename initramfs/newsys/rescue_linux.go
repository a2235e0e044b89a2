package newsys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/atomicfile"
	"golang.org/x/sys/unix"
)

// The rescue laid on an ESP (the new one by the way back, the box's own by
// a hand-off through the one-shot entry), for systemd-boot to start
// once after a power cut while the rescue writes the system disk.
const (
	RescueEntry  = "passeur-rescue.conf" // in loader/entries
	RescueFolder = "passeur-rescue"      // its kernel and initramfs
	// RescueTitle begins the entry's title: LoadBootEntry never takes it
	// for the new system's.
	RescueTitle = "passeur rescue"
)

// ErrNoLoader: the ESP holds no systemd-boot (its binary where the
// firmware starts it, and loader/entries); the firmware's loader is not
// one passeur can leave an entry to.
var ErrNoLoader = errors.New("the ESP holds no systemd-boot with loader/entries")

// loaders are where an ESP holds the boot loader the firmware starts: the
// removable-media path (the one a new ESP written whole is started by),
// then systemd-boot's own (bootctl install); vfat looks names up without
// case.
var loaders = []string{
	"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/BOOTAA64.EFI",
	"EFI/systemd/systemd-bootx64.efi", "EFI/systemd/systemd-bootaa64.efi",
}

// sdMagic is in every systemd-boot binary (its .sdmagic section, since
// systemd 242): "#### LoaderInfo: systemd-boot 252.39-1~deb12u2 ####".
var sdMagic = []byte("#### LoaderInfo: systemd-boot ")

// maxLoader bounds a boot loader binary as read.
const maxLoader = 16 << 20

// systemdBoot tells whether the ESP mounted at esp starts systemd-boot,
// the loader that reads the default and one-shot entries: the first
// loader binary found must be systemd-boot's.
func systemdBoot(esp string) error {
	for _, l := range loaders {
		f, err := os.Open(filepath.Join(esp, l))
		if err != nil {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(f, maxLoader))
		f.Close()
		if err != nil {
			return err
		}
		if !bytes.Contains(data, sdMagic) {
			return fmt.Errorf("%w: %s is another loader", ErrNoLoader, l)
		}
		return nil
	}
	return ErrNoLoader
}

// ErrESPFull: no room on the ESP for the rescue.
var ErrESPFull = errors.New("no room on the ESP for the rescue")

// slackESP is kept free on the ESP beside the rescue.
const slackESP = 1 << 20

// writeFile writes a file of the rescue whole (a test stands in for a
// write that fails).
var writeFile = atomicfile.WriteFile

// espFree is the room left on the filesystem mounted at p.
var espFree = func(p string) (int64, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		return 0, err
	}
	return int64(sfs.Bavail) * sfs.Bsize, nil
}

// AddRescue lays, on the ESP mounted at esp, the rescue's kernel and
// initramfs under RescueFolder and a systemd-boot entry starting them with
// cmdline, the entry last: what the boot loader starts once the rescue
// set systemd-boot's default or one-shot entry to it (efivar). Nothing is written when the ESP does
// not start systemd-boot; what an earlier attempt left is taken off
// before the room is counted, and what this one wrote when it fails.
func AddRescue(esp string, kernel, initrd []byte, cmdline string) (err error) {
	entries := filepath.Join(esp, "loader", "entries")
	if st, err := os.Lstat(entries); err != nil || !st.IsDir() {
		return ErrNoLoader
	}
	if err := systemdBoot(esp); err != nil {
		return err
	}
	if strings.ContainsAny(cmdline, "\n\r") {
		return fmt.Errorf("the rescue's command line holds a line break")
	}
	if err := RemoveRescue(esp); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, RemoveRescue(esp))
		}
	}()
	free, err := espFree(esp)
	if err != nil {
		return err
	}
	if need := int64(len(kernel)+len(initrd)) + slackESP; free < need {
		return fmt.Errorf("%w: %d bytes free, %d needed", ErrESPFull, free, need)
	}
	dir := filepath.Join(esp, RescueFolder)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"vmlinuz": kernel, "initramfs.cpio.zst": initrd} {
		if err := writeFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	entry := "title " + RescueTitle + " (taking up a staged update)\n" +
		"linux /" + path.Join(RescueFolder, "vmlinuz") + "\n" +
		"initrd /" + path.Join(RescueFolder, "initramfs.cpio.zst") + "\n" +
		"options " + cmdline + "\n"
	if err := writeFile(filepath.Join(entries, RescueEntry), []byte(entry), 0o644); err != nil {
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
	// The entry first, then what a write cut short left (atomicfile's
	// .tmp), then the files it starts.
	for _, name := range []string{RescueEntry, RescueEntry + ".tmp"} {
		if err := os.Remove(filepath.Join(esp, "loader", "entries", name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(esp, RescueFolder)); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Join(esp, "loader", "entries"))
}
