// Package backup copies what a system cannot lose (its configuration, its
// recording index, its fstab, the run's plan) to the install media, in a
// form any PC can check: a folder per backup under Backup/<host>/, the files
// as they were (or age-encrypted), a manifest with every file's size, mode,
// owner, time and SHA-256, and a SHA256SUMS that `sha256sum -c` reads. A
// backup counts only once it has been read back from the media and checked:
// then, and only then, its COMPLETE file is written. Restore puts a
// complete backup back into a mounted root, refusing one that does not
// verify.
//
// What a restore trusts: nothing on the media. A backup is read as an
// attacker or a failing key could have written it. Before its first write,
// Prepare checks the whole backup: COMPLETE names the SHA256SUMS read,
// SHA256SUMS names the manifest read, every stored file hashes as listed,
// every name read (SHA256SUMS', the manifest's pieces) is one the writer
// makes (storedName) and is opened inside the backup folder only, counts
// and sizes are bounded, each entry is a clean absolute path under the
// paths the caller allows, no entry lies below a symbolic link of the
// backup, no path comes twice, no link is absolute or leads out of the
// allowed paths, and the backup was taken on this machine (MachineID).
// Every write then happens inside the restore root (os.Root), setuid,
// setgid and sticky bits are dropped and owners outside the caller's are
// made root's.
//
// What the checks above prove is integrity and consistency, not origin:
// anyone holding the key can write a backup that passes them, naming this
// machine's disk serial and root UUID (not secrets) and the allowed paths.
// The seal proves origin: an HMAC-SHA256, keyed with a per-machine secret
// of SecretSize random bytes, over the exact bytes of the manifest and
// SHA256SUMS (Seal, CheckSeal). The secret lives on the installed system,
// never on the media, so a key edited by anyone who lacks the box's secret
// cannot make that box accept a backup (RestoreOptions.Secret). It does
// not protect: a box with no secret yet (the first migration from a system
// passeur did not install) has only the checks above; anyone who can read
// the box's disk has its secret; an older backup sealed by the same box
// can be restored again in place of a newer one (the seal binds content,
// not time); and a clone of a box (same disk image, same secret) accepts
// the original's backups.
//
// Layout of one backup folder:
//
//	MANIFEST.json (or MANIFEST.json.age)  every entry, with its pieces
//	SHA256SUMS                            sha256sum -c format, of what is stored
//	COMPLETE                              written last, names SHA256SUMS' hash
//	files/<path>                          the system's files (.age when encrypted;
//	                                      .000, .001… pieces when over 4 GiB)
//	recovered/<path>                      files rebuilt by passeur (a lost index)
//	passeur/<name>                        passeur's own records (the plan)
//
// The run's journal and console log sit beside them (package journal).
package backup

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Names on the media.
const (
	ManifestFile = "MANIFEST.json"
	SumsFile     = "SHA256SUMS"
	CompleteFile = "COMPLETE"
	// PieceSize is the largest piece stored: FAT32 holds files of at most
	// 4 GiB - 1 byte, and larger files are split.
	PieceSize int64 = 4<<30 - 1<<20
	// Format is the manifest format version.
	Format = 1
)

// Origins of an entry.
const (
	OriginSystem    = "system"    // copied from the installed system
	OriginRecovered = "recovered" // rebuilt by passeur (an index from the recordings)
	OriginDamaged   = "damaged"   // copied from the system but failed its own check; kept, not restored
	OriginPasseur   = "passeur"   // passeur's records (the plan); not restored
)

// Errors a caller may branch on.
var (
	ErrCorrupt       = errors.New("backup does not verify")
	ErrIncomplete    = errors.New("backup is not complete")
	ErrNoBackup      = errors.New("no complete backup for this host")
	ErrSourceChanged = errors.New("file changed while it was backed up")
	ErrNameClash     = errors.New("two backed-up paths differ only by case, which FAT cannot store")
	ErrNoIdentity    = errors.New("backup is encrypted and no age identity decrypts it")
	// ErrUnsafeEntry: an entry restore refuses to write (a path not clean
	// and absolute, one that comes twice, one below a symbolic link of
	// the backup, a link that is absolute or leads out of the allowed
	// paths).
	ErrUnsafeEntry = errors.New("backup holds an entry restore refuses")
	// ErrNotAllowed: an entry outside the paths the restore may write.
	ErrNotAllowed = errors.New("backup holds a path outside those a restore may write")
	// ErrOtherMachine: the backup was taken on another machine.
	ErrOtherMachine = errors.New("backup was taken on another machine")
	// ErrUnknownMachine: the backup records no machine (written by a
	// passeur older than MachineID), so nothing says it is this one's.
	ErrUnknownMachine = errors.New("backup records no machine identity")
	ErrNotSealed      = errors.New("backup is not sealed by this machine")
	ErrBadSeal        = errors.New("backup's seal does not match: changed, or sealed by another machine")
)

// Manifest describes one backup.
type Manifest struct {
	Format  int       `json:"format"`
	Host    string    `json:"host"`
	Machine string    `json:"machine"` // the system disk's identity and root, for people
	Created time.Time `json:"created"`
	Product string    `json:"product"`
	Version string    `json:"version"`
	Source  string    `json:"source"` // the device of the root backed up ("STATE over ROOT" for a layered install)
	// MachineID is the machine the backup was taken from, compared by
	// restore; nil in backups of a passeur older than it.
	MachineID *MachineID `json:"machine_id,omitempty"`
	// Recipients are the age recipients the files are encrypted to; none
	// means plain files.
	Recipients []string `json:"recipients,omitempty"`
	// Missing lists the asked paths the system did not have.
	Missing []string `json:"missing,omitempty"`
	Entries []Entry  `json:"entries"`
}

// Entry is one file, folder or symbolic link of the backup.
type Entry struct {
	Path   string    `json:"path"` // absolute, in the system's root
	Origin string    `json:"origin"`
	Type   string    `json:"type"` // file, dir, symlink
	Mode   uint32    `json:"mode"` // permission, setuid, setgid and sticky bits
	UID    int       `json:"uid"`
	GID    int       `json:"gid"`
	MTime  time.Time `json:"mtime"`
	Size   int64     `json:"size,omitempty"`   // of the content, before encryption
	SHA256 string    `json:"sha256,omitempty"` // of the content, before encryption
	Target string    `json:"target,omitempty"` // of a symbolic link
	Pieces []Piece   `json:"pieces,omitempty"`
}

// Piece is one stored file of an entry, as it is on the media.
type Piece struct {
	Name   string `json:"name"` // relative to the backup folder
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Restored reports whether restore puts the entry back.
func (e Entry) Restored() bool { return e.Origin == OriginSystem || e.Origin == OriginRecovered }

// storedName is where an entry of origin and path is stored, relative to
// the backup folder, with every path element made safe for FAT.
func storedName(origin, p string) string {
	dir := originDir(origin)
	var parts []string
	for _, e := range strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/") {
		parts = append(parts, fatSafe(e))
	}
	return dir + "/" + strings.Join(parts, "/")
}

// originDir is the folder entries of origin are stored in; "" for an
// origin passeur does not write.
func originDir(origin string) string {
	switch origin {
	case OriginSystem, OriginDamaged:
		return "files"
	case OriginRecovered:
		return "recovered"
	case OriginPasseur:
		return "passeur"
	}
	return ""
}

// fatSafe escapes, as %XX, the bytes FAT refuses in names, and trailing
// dots and spaces, which it drops.
func fatSafe(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		trailing := (c == '.' || c == ' ') && strings.Trim(name[i:], ". ") == ""
		if c < 0x20 || strings.IndexByte(`"*:<>?\|%`, c) >= 0 || trailing {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Stamp names a backup folder by its UTC creation time, sortable and legal
// on FAT: 2026-11-23T162632Z.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T150405Z") }

// HostName makes a host name safe as a folder name on FAT.
func HostName(h string) string {
	h = strings.TrimSpace(h)
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "unnamed"
	}
	return b.String()
}
