// Package usbkey makes passeur's install media for a board: the tree a
// FAT32 key holds (systemd-boot as the removable-media loader, one boot
// entry per mode, the rescue kernel and initramfs, passeur's marker and
// config, signed releases, an empty Backup/), either copied onto a FAT32
// key a technician already has (Prepare) or as a GPT disk image to dd onto
// one (Image).
package usbkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/initramfs/atomicfile"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/config"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/roles"
)

// Content is what goes on a key.
type Content struct {
	Loader    string // systemd-boot's EFI binary, e.g. SystemdBoot
	Kernel    string // the board's vmlinuz
	Initramfs string // the rescue initramfs
	Cmdline   string // the board's kernel command line
	// Releases are folders of signed releases (manifest.json, its
	// signature, the artifacts); each goes to releases/<product>-<version>.
	Releases []string
	// Config is passeur/config.json (see package config); nil for none.
	Config []byte
	// Stamp is every file's time (reproducible images); zero: now.
	Stamp time.Time
}

// Entry is one entry of the key's boot menu.
type Entry struct {
	Name, Title, Options string
}

// Entries are the key's boot menu, the default first.
var Entries = []Entry{
	{"migrate", "passeur: migrate (or install), asks before writing", "passeur.mode=migrate"},
	{"backup", "passeur: back up only", "passeur.mode=backup"},
	{"recover", "passeur: rebuild the recording index, then back up", "passeur.mode=recover"},
	{"shell", "passeur: debug shell", "passeur.mode=shell"},
}

// SystemdBoot is where Debian's systemd-boot-efi package puts the loader.
const SystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// Marker is the content of passeur's marker file on the keys it makes.
const Marker = roles.MarkerData

// Files lists the key's tree: files, and folders that must exist even
// empty.
func (c Content) Files() ([]fat.File, []string, error) {
	if c.Config != nil {
		if _, errs := config.Load("", c.Config); len(errs) > 0 {
			return nil, nil, fmt.Errorf("config: %w", errors.Join(errs...))
		}
	}
	files := []fat.File{
		{Path: "/EFI/BOOT/BOOTX64.EFI", From: c.Loader},
		{Path: "/passeur/vmlinuz", From: c.Kernel},
		{Path: "/passeur/initramfs.cpio.zst", From: c.Initramfs},
		{Path: "/" + roles.MediaMarker, Data: []byte(Marker)},
		{Path: "/loader/loader.conf", Data: []byte("default passeur-" + Entries[0].Name + ".conf\ntimeout 5\nconsole-mode keep\n")},
	}
	for i, e := range Entries {
		entry := fmt.Sprintf("title %s\nsort-key passeur-%d\nlinux /passeur/vmlinuz\ninitrd /passeur/initramfs.cpio.zst\noptions %s\n",
			e.Title, i, strings.TrimSpace(c.Cmdline+" "+e.Options))
		files = append(files, fat.File{Path: "/loader/entries/passeur-" + e.Name + ".conf", Data: []byte(entry)})
	}
	if c.Config != nil {
		files = append(files, fat.File{Path: "/" + config.File, Data: c.Config})
	}
	for _, dir := range c.Releases {
		data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			return nil, nil, err
		}
		m, err := release.Parse(data)
		if err != nil {
			return nil, nil, fmt.Errorf("release %s: %w", dir, err)
		}
		to := path.Join("/", media.ReleasesDir, m.Product+"-"+m.Version.String())
		for _, name := range []string{"manifest.json", "manifest.json" + sign.Ext} {
			files = append(files, fat.File{Path: path.Join(to, name), From: filepath.Join(dir, name)})
		}
		for _, a := range m.Artifacts {
			files = append(files, fat.File{Path: path.Join(to, a.File), From: filepath.Join(dir, filepath.FromSlash(a.File))})
		}
	}
	return files, []string{"/" + backup.Root}, nil
}

// Prepare copies the key's tree into dir, the mount point of a FAT32 key
// (or any folder): each file written under a temporary name, synced and
// renamed; what else the key holds (earlier backups) is left alone.
func Prepare(dir string, c Content) error {
	files, dirs, err := c.Files()
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := atomicfile.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			return err
		}
	}
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := atomicfile.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		data := f.Data
		if f.From != "" {
			if data, err = os.ReadFile(f.From); err != nil {
				return err
			}
		}
		if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Image makes img, a disk image of size bytes to dd onto a key: a GPT with
// one FAT32 EFI system partition (PARTLABEL passeur) from 1 MiB to 1 MiB
// before the end, holding the key's tree. The image file is sparse.
func Image(img string, size int64, c Content) error {
	files, dirs, err := c.Files()
	if err != nil {
		return err
	}
	const mib = 1 << 20
	part := (size - 2*mib) / mib * mib
	if part < 64*mib {
		return fmt.Errorf("key image of %d bytes: too small (64 MiB of FAT32 at least)", size)
	}
	stamp := c.Stamp
	if stamp.IsZero() {
		stamp = time.Now()
	}
	tmp := img + ".fat"
	defer os.Remove(tmp)
	if err := fat.Make(tmp, part, "PASSEUR", files, dirs, stamp.UTC()); err != nil {
		return err
	}
	out, err := os.Create(img)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return err
	}
	t := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		GUID: strings.ToUpper(release.StableUUID("passeur key " + stamp.UTC().String())),
		Partitions: []*gpt.Partition{{Index: 1, Start: mib / 512, End: (mib+uint64(part))/512 - 1, Size: uint64(part),
			Type: gpt.EFISystemPartition, Name: "passeur", GUID: strings.ToUpper(release.StableUUID("passeur key esp " + stamp.UTC().String()))}}}
	if err := t.Write(out, size); err != nil {
		return fmt.Errorf("key image table: %w", err)
	}
	in, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := copySparse(out, mib, in); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// copySparse copies r to w at offset, skipping blocks of zeros (the image
// is a sparse file, its holes read as zeros).
func copySparse(w io.WriterAt, offset int64, r io.Reader) error {
	buf := make([]byte, 1<<20)
	for at := offset; ; {
		n, err := io.ReadFull(r, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, werr := w.WriteAt(buf[:n], at); werr != nil {
				return werr
			}
		}
		at += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// ConfigJSON renders config keys as passeur/config.json.
func ConfigJSON(keys map[string]string) ([]byte, error) {
	b, err := json.MarshalIndent(keys, "", "  ")
	return append(b, '\n'), err
}
