// Package usbkey makes passeur's install media for a board: the tree a
// FAT32 key holds (systemd-boot as the removable-media loader, one boot
// entry per mode, the rescue kernel and initramfs, passeur's marker and
// config, releases verified against the keys the rescue trusts, an empty
// Backup/), either copied onto a FAT32 key a technician already has
// (Prepare) or as a GPT disk image to dd onto one (Image).
package usbkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
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
	// Trusted are the keys a release's manifest must be signed by: those
	// the rescue image on the key trusts (passeur key -trust). A release
	// signed by none of them is refused before anything is written.
	Trusted []minisign.PublicKey
	// Config is passeur/config.json (see package config); nil for none.
	Config []byte
	// Stamp is every file's time (reproducible images); zero: now.
	Stamp time.Time
}

// Errors a caller may branch on; Files, Prepare and Image wrap one of them,
// or sign.ErrBadSignature for a release signed by no trusted key (or not
// at all), before anything is written.
var (
	ErrNoTrustedKey  = errors.New("no trusted key to verify the releases with (passeur key -trust)")
	ErrOutsideFolder = errors.New("path leaves its folder on the key")
	ErrSamePlace     = errors.New("two files for one place on the key")
	ErrKeySize       = errors.New("no key image can be made at this size")
)

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
		{Path: "/" + medialayout.Marker, Data: []byte(medialayout.MarkerData)},
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
	if len(c.Releases) > 0 && len(c.Trusted) == 0 {
		return nil, nil, ErrNoTrustedKey
	}
	for _, dir := range c.Releases {
		rel, err := c.release(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("release %s: %w", dir, err)
		}
		files = append(files, rel...)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[strings.ToLower(f.Path)] {
			return nil, nil, fmt.Errorf("%w: %s", ErrSamePlace, f.Path)
		}
		seen[strings.ToLower(f.Path)] = true
	}
	return files, []string{"/" + medialayout.BackupDir}, nil
}

// release verifies the release in dir, manifest signature first, then
// its artifacts as stored, and returns its files on the key: the manifest
// and signature as verified (never read again), the artifacts copied.
func (c Content) release(dir string) ([]fat.File, error) {
	manifest := filepath.Join(dir, release.ManifestFile)
	data, err := os.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	sig, err := os.ReadFile(manifest + sign.Ext)
	if err != nil {
		return nil, fmt.Errorf("%w: no signature: %w", sign.ErrBadSignature, err)
	}
	verr := sign.ErrBadSignature
	for _, k := range c.Trusted {
		if _, verr = sign.Verify(k, data, sig); verr == nil {
			break
		}
	}
	if verr != nil {
		return nil, fmt.Errorf("signed by none of the %d trusted keys: %w", len(c.Trusted), verr)
	}
	m, err := release.Parse(data)
	if err != nil {
		return nil, err
	}
	if err := m.VerifyArtifactsStored(os.DirFS(dir), "."); err != nil {
		return nil, err
	}
	to, err := within("/"+medialayout.ReleasesDir, m.Product+"-"+m.Version.String())
	if err != nil {
		return nil, err
	}
	files := []fat.File{{Path: path.Join(to, release.ManifestFile), Data: data}, {Path: path.Join(to, release.ManifestFile+sign.Ext), Data: sig}}
	for _, a := range m.Artifacts {
		p, err := within(to, a.File)
		if err != nil {
			return nil, err
		}
		files = append(files, fat.File{Path: p, From: filepath.Join(dir, filepath.FromSlash(a.File))})
	}
	return files, nil
}

// within joins name to the folder dir and refuses the result unless it
// is inside dir.
func within(dir, name string) (string, error) {
	p := path.Join(dir, name)
	if !strings.HasPrefix(p, dir+"/") {
		return "", fmt.Errorf("%w: %q in %s gives %s", ErrOutsideFolder, name, dir, p)
	}
	return p, nil
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
// before the end, holding the key's tree. The image file is sparse. It is
// made under a temporary name and renamed once complete: a refusal or a
// failure leaves no image behind, nor changes an earlier one.
func Image(img string, size int64, c Content) error {
	const mib = 1 << 20
	part := (size - 2*mib) / mib * mib
	if size%512 != 0 || part < 64*mib {
		return fmt.Errorf("%w: %d bytes (a multiple of 512, with 64 MiB of FAT32 at least)", ErrKeySize, size)
	}
	if st, err := os.Stat(img); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("key image %s: not a regular file (make the image, then dd it onto the key)", img)
	}
	files, dirs, err := c.Files()
	if err != nil {
		return err
	}
	stamp := c.Stamp
	if stamp.IsZero() {
		stamp = time.Now()
	}
	tmp := img + ".tmp"
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return err
	}
	if err := fat.MakeAt(out, mib, part, "PASSEUR", files, dirs, stamp.UTC()); err != nil {
		if errors.Is(err, fat.ErrSize) {
			return fmt.Errorf("%w: %d bytes: %w", ErrKeySize, size, err)
		}
		return err
	}
	// The table last: until it is written, the image boots nothing.
	t := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		GUID: strings.ToUpper(release.StableUUID("passeur key " + stamp.UTC().String())),
		Partitions: []*gpt.Partition{{Index: 1, Start: mib / 512, End: (mib+uint64(part))/512 - 1, Size: uint64(part),
			Type: gpt.EFISystemPartition, Name: "passeur", GUID: strings.ToUpper(release.StableUUID("passeur key esp " + stamp.UTC().String()))}}}
	if err := t.Write(out, size); err != nil {
		return fmt.Errorf("key image table: %w", err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, img)
}

// ConfigJSON renders config keys as passeur/config.json.
func ConfigJSON(keys map[string]string) ([]byte, error) {
	b, err := json.MarshalIndent(keys, "", "  ")
	return append(b, '\n'), err
}
