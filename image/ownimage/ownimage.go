// Package ownimage lets a running rescue write its own initramfs again,
// out of the files it runs from, for the firmware to start it after a
// power cut (the way back to the rescue).
//
// At build, Seal adds to the archive a manifest of every one of its
// records (medialayout.InitramfsManifest): name, type and permissions,
// owner, device numbers, and either a regular file's SHA-256 or, for a
// small file or a link, its bytes. At run time, Rebuild writes an archive
// from that manifest alone, taking the bytes of each larger file from the
// running root and only if they have the SHA-256 the build recorded.
// Nothing read from a disk goes into what it writes: a staged copy of the
// initramfs, on a volume anybody may have altered, is never parsed.
package ownimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/sys/unix"
)

// Entry is one record of the archive.
type Entry struct {
	Name string `json:"name"`
	// Mode is the record's type and permission bits, as newc holds them.
	Mode uint64 `json:"mode"`
	UID  uint64 `json:"uid,omitempty"`
	GID  uint64 `json:"gid,omitempty"`
	// Rdev is a device node's major and minor numbers.
	Rdev [2]uint64 `json:"rdev,omitzero"`
	// Size and SHA256 are a regular file's, read from the running root.
	Size   uint64 `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Data is a link's target, or a small regular file's bytes: those the
	// rescue may rewrite as it runs (a DHCP lease's resolv.conf) travel in
	// the manifest.
	Data []byte `json:"data,omitempty"`
}

// Manifest lists an archive's records in their order.
type Manifest struct {
	Entries []Entry `json:"entries"`
}

const (
	// inline is the size up to which a regular file's bytes are in the
	// manifest.
	inline = 4096
	// MaxManifest bounds the manifest as read back.
	MaxManifest = 8 << 20
	// maxFile bounds one regular file.
	maxFile = 256 << 20
)

// kinds are the record types an initramfs built by passeur holds.
var kinds = map[uint64]bool{cpio.S_IFREG: true, cpio.S_IFDIR: true, cpio.S_IFLNK: true, cpio.S_IFCHR: true, cpio.S_IFBLK: true}

// checkName refuses a name the kernel's unpacker could take elsewhere
// than it reads: absolute, with "." or ".." parts, or not in clean form.
func checkName(name string) error {
	if name == "" || name == "." || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") ||
		strings.ContainsRune(name, 0) {
		return fmt.Errorf("record name %q", name)
	}
	return nil
}

// Seal copies the newc archive in to out with the manifest of its records
// as one more record before the trailer. It refuses what Rebuild could
// not write again the same: hard links, duplicate or unclean names,
// record types other than files, folders, links and device nodes.
func Seal(in io.ReaderAt, out io.Writer) error {
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(in))
	if err != nil {
		return err
	}
	var m Manifest
	seen := map[string]bool{}
	w := cpio.Newc.Writer(out)
	for _, r := range recs {
		if err := checkName(r.Name); err != nil {
			return err
		}
		if seen[r.Name] || r.Name == medialayout.InitramfsManifest {
			return fmt.Errorf("%s: twice in the archive", r.Name)
		}
		seen[r.Name] = true
		kind := r.Mode & cpio.S_IFMT
		if !kinds[kind] {
			return fmt.Errorf("%s: a record of type %#o", r.Name, kind)
		}
		if kind == cpio.S_IFREG && r.NLink > 1 {
			return fmt.Errorf("%s: a hard link", r.Name)
		}
		e := Entry{Name: r.Name, Mode: r.Mode, UID: r.UID, GID: r.GID}
		switch kind {
		case cpio.S_IFCHR, cpio.S_IFBLK:
			e.Rdev = [2]uint64{r.Rmajor, r.Rminor}
		case cpio.S_IFREG, cpio.S_IFLNK:
			data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				return fmt.Errorf("%s: %w", r.Name, err)
			}
			if kind == cpio.S_IFLNK || len(data) <= inline {
				e.Data = data
				if e.Data == nil {
					e.Data = []byte{}
				}
			} else {
				sum := sha256.Sum256(data)
				e.Size, e.SHA256 = uint64(len(data)), hex.EncodeToString(sum[:])
			}
		}
		m.Entries = append(m.Entries, e)
		if err := w.WriteRecord(r); err != nil {
			return err
		}
	}
	if !seen[path.Dir(medialayout.InitramfsManifest)] {
		return fmt.Errorf("the archive has no folder %s for its manifest", path.Dir(medialayout.InitramfsManifest))
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(data) > MaxManifest {
		return fmt.Errorf("a manifest of %d bytes: a rescue reads %d at most", len(data), MaxManifest)
	}
	if err := w.WriteRecord(cpio.StaticFile(medialayout.InitramfsManifest, string(data), 0o644)); err != nil {
		return err
	}
	return cpio.WriteTrailer(w)
}

// Rebuild writes to out, as a newc archive, the initramfs the rescue
// running from root was started with: the records of its manifest in
// their order, then the manifest. It fails, and out must be dropped, when
// a file holds other bytes than the build recorded.
func Rebuild(root string, out io.Writer) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	raw, err := readFile(r, medialayout.InitramfsManifest, MaxManifest)
	if err != nil {
		return fmt.Errorf("the rescue's manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("the rescue's manifest: %w", err)
	}
	if len(m.Entries) == 0 {
		return errors.New("the rescue's manifest lists nothing")
	}
	w := cpio.Newc.Writer(out)
	for i, e := range m.Entries {
		if err := checkName(e.Name); err != nil {
			return err
		}
		info := cpio.Info{Ino: uint64(i + 1), Name: e.Name, Mode: e.Mode, UID: e.UID, GID: e.GID}
		var data []byte
		switch kind := e.Mode & cpio.S_IFMT; kind {
		case cpio.S_IFDIR:
		case cpio.S_IFCHR, cpio.S_IFBLK:
			info.Rmajor, info.Rminor = e.Rdev[0], e.Rdev[1]
		case cpio.S_IFLNK:
			data = e.Data
		case cpio.S_IFREG:
			if e.SHA256 == "" {
				data = e.Data
				break
			}
			if e.Size > maxFile {
				return fmt.Errorf("%s: %d bytes", e.Name, e.Size)
			}
			if data, err = readFile(r, e.Name, int64(e.Size)); err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			if uint64(len(data)) != e.Size || hex.EncodeToString(sum[:]) != e.SHA256 {
				return fmt.Errorf("%s: not the file the rescue was built with", e.Name)
			}
		default:
			return fmt.Errorf("%s: a record of type %#o", e.Name, kind)
		}
		info.FileSize = uint64(len(data))
		if err := w.WriteRecord(cpio.Record{ReaderAt: bytes.NewReader(data), Info: info}); err != nil {
			return err
		}
	}
	if err := w.WriteRecord(cpio.StaticFile(medialayout.InitramfsManifest, string(raw), 0o644)); err != nil {
		return err
	}
	return cpio.WriteTrailer(w)
}

// readFile reads the regular file name of r, at most limit bytes, no link
// followed.
func readFile(r *os.Root, name string, limit int64) ([]byte, error) {
	lst, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	f, err := r.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !lst.Mode().IsRegular() || !os.SameFile(lst, st) {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s: more than %d bytes", name, limit)
	}
	return data, err
}
