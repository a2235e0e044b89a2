package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/progress"
)

// RestoreOptions tune Restore. The zero value restores nothing: a restore
// names the paths it may write and the machine it runs on.
type RestoreOptions struct {
	// Identities decrypt an encrypted backup.
	Identities []age.Identity
	// Map gives, for a path of the old system, where it goes under the
	// root (default: the same path). Returning "" leaves the entry out.
	Map func(string) string
	// Progress, when set, is told of every byte restored.
	Progress *progress.Progress
	// Paths are the paths of the old system the restore may write, each
	// with what is below it: the product profile's configuration and
	// index paths. A backup holding anything else is refused whole
	// (ErrNotAllowed).
	Paths []string
	// UIDs and GIDs are the owners restored as recorded: the product's
	// own. Any other owner becomes root (0). Setuid, setgid and sticky
	// bits are never restored.
	UIDs, GIDs []int
	// Machine is the machine passeur runs on (see MachineID.Same); a
	// backup taken on another is refused (ErrOtherMachine).
	Machine MachineID
	// AllowUnrecorded accepts a backup that records no machine, written
	// by a passeur older than MachineID, otherwise refused
	// (ErrUnknownMachine): set it only when the operator confirmed the
	// backup is this machine's.
	AllowUnrecorded bool
	// Secret is this machine's backup secret (see Seal). When set, a
	// backup it did not seal is refused (ErrNotSealed, ErrBadSeal); leave
	// it nil only when the machine has none yet.
	Secret []byte
}

// Plan is a restore checked whole and not yet written (Prepare).
type Plan struct {
	dir       string
	m         *Manifest
	encrypted bool
	o         RestoreOptions
	steps     []placed
	total     int64
}

// Manifest returns the manifest of the backup the plan restores.
func (p *Plan) Manifest() *Manifest { return p.m }

// Entries returns the entries the plan restores, in order.
func (p *Plan) Entries() []Entry {
	var out []Entry
	for _, s := range p.steps {
		out = append(out, s.Entry)
	}
	return out
}

// Restore puts the backup in dir back under root: Prepare, then
// Plan.Restore. It returns the entries restored.
func Restore(dir, root string, o RestoreOptions) ([]Entry, error) {
	p, err := Prepare(dir, o)
	if err != nil {
		return nil, err
	}
	return p.Restore(root)
}

// Prepare checks the whole backup in dir before anything is written, in
// this order: COMPLETE names its SHA256SUMS; the seal, with o.Secret;
// SHA256SUMS names its manifest; the manifest (decrypted with
// o.Identities) follows the writer's rules; the machine is this one; every
// entry may be restored (plan); every stored file hashes as SHA256SUMS
// says and is as large as the manifest says; every restored file's
// content, decrypted, has the manifest's size and hash. The backup is read
// from the media again when the plan is restored, and checked again as it
// is written.
func Prepare(dir string, o RestoreOptions) (*Plan, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, media.Failure(err)
	}
	defer r.Close()
	in, err := inspect(r, o)
	if err != nil {
		return nil, err
	}
	steps, err := plan(in.m, o)
	if err != nil {
		return nil, err
	}
	sizes, err := verifyStored(r, in.sums)
	if err != nil {
		return nil, err
	}
	if bad := crossCheck(in.m, in.mname, in.sums, sizes); len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	p := &Plan{dir: dir, m: in.m, encrypted: in.encrypted, o: o, steps: steps}
	var bad []string
	for _, s := range steps {
		if s.Type != "file" {
			continue
		}
		p.total += s.Size
		if err := readEntry(r, s.Entry, in.encrypted, o.Identities, io.Discard); err != nil {
			bad = append(bad, fmt.Sprintf("%s (%v)", s.Path, err))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, dir, strings.Join(bad, ", "))
	}
	return p, nil
}

// inspected is what inspect read of a backup.
type inspected struct {
	m         *Manifest
	mname     string
	sums      map[string]string
	encrypted bool
}

// inspectDir is inspect on the backup folder dir.
func inspectDir(dir string, o RestoreOptions) (*inspected, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, media.Failure(err)
	}
	defer r.Close()
	return inspect(r, o)
}

// inspect runs the checks of a backup that read its small files only:
// complete, sealed, manifest listed, manifest sound, this machine's. Each
// is made on the bytes read once, and those are the bytes used.
func inspect(r *os.Root, o RestoreOptions) (*inspected, error) {
	sumsData, err := readSumsFile(r)
	if err != nil {
		return nil, err
	}
	if err := completes(r, sumsData); err != nil {
		return nil, err
	}
	mname, mdata, err := readManifestBytes(r)
	if err != nil {
		return nil, err
	}
	if o.Secret != nil {
		if err := checkSeal(r, o.Secret, mname, mdata, sumsData); err != nil {
			return nil, err
		}
	}
	in := &inspected{mname: mname, encrypted: mname != ManifestFile}
	if in.sums, err = parseSums(sumsData); err != nil {
		return nil, err
	}
	if in.sums[mname] != hexSum(mdata) {
		return nil, fmt.Errorf("%w: %s: %s is not the one %s lists", ErrCorrupt, r.Name(), mname, SumsFile)
	}
	if in.encrypted {
		if mdata, err = decryptManifest(mdata, o.Identities); err != nil {
			return nil, err
		}
	}
	if in.m, err = parseManifest(mdata, in.encrypted); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Name(), err)
	}
	if err := checkMachine(in.m, o.Machine, o.AllowUnrecorded); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Name(), err)
	}
	return in, nil
}

// Restore writes the plan under root, every operation inside it
// (os.Root): folders, then links and files as the manifest orders them,
// each file under a temporary name, synced, given its owner, mode and
// time, then renamed; folders get their times last. Owners not in
// UIDs/GIDs become root, and setuid, setgid and sticky bits are dropped.
// A file whose content no longer matches the manifest stops the restore;
// what was written before it stays.
func (p *Plan) Restore(root string) ([]Entry, error) {
	key, err := os.OpenRoot(p.dir)
	if err != nil {
		return nil, media.Failure(err)
	}
	defer key.Close()
	dst, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("backup: restore into %s: %w", root, err)
	}
	defer dst.Close()
	p.o.Progress.Start(p.total)
	for _, s := range p.steps {
		name := strings.TrimPrefix(s.dest, "/")
		uid, gid := p.owner(s.Entry)
		var err error
		switch s.Type {
		case "dir":
			err = restoreDir(dst, name, s.Entry, uid, gid)
		case "symlink":
			err = restoreLink(dst, name, s.Target, uid, gid)
		case "file":
			err = p.restoreFile(key, dst, name, s.Entry, uid, gid)
		}
		if err != nil {
			return nil, fmt.Errorf("backup: restore %s to %s: %w", s.Path, filepath.Join(root, name), err)
		}
	}
	// Folders last, deepest first: writing into them changed their times.
	for i := len(p.steps) - 1; i >= 0; i-- {
		if s := p.steps[i]; s.Type == "dir" {
			if err := dst.Chtimes(strings.TrimPrefix(s.dest, "/"), time.Time{}, s.MTime); err != nil {
				return nil, fmt.Errorf("backup: restore %s: %w", s.Path, err)
			}
		}
	}
	p.o.Progress.Finish()
	return p.Entries(), nil
}

// owner is the owner an entry is restored with: its own when the
// product's, else root.
func (p *Plan) owner(e Entry) (uid, gid int) {
	if slices.Contains(p.o.UIDs, e.UID) {
		uid = e.UID
	}
	if slices.Contains(p.o.GIDs, e.GID) {
		gid = e.GID
	}
	return uid, gid
}

// mode is the permission an entry is restored with: no setuid, setgid or
// sticky bit.
func mode(e Entry) fs.FileMode { return fs.FileMode(e.Mode & 0o777) }

// tmpSuffix names what a restore writes before renaming it.
const tmpSuffix = ".passeur-tmp"

func restoreDir(dst *os.Root, name string, e Entry, uid, gid int) error {
	if err := dst.MkdirAll(name, 0o755); err != nil {
		return err
	}
	if err := dst.Chown(name, uid, gid); err != nil {
		return err
	}
	return dst.Chmod(name, mode(e))
}

// restoreLink makes the link under a temporary name and renames it over
// whatever is at name.
func restoreLink(dst *os.Root, name, target string, uid, gid int) error {
	if err := dst.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + tmpSuffix
	if err := dst.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := dst.Symlink(target, tmp); err != nil {
		return err
	}
	err := dst.Lchown(tmp, uid, gid)
	if err == nil {
		err = renameDurably(dst, tmp, name, false)
	}
	if err != nil {
		dst.Remove(tmp)
	}
	return err
}

func (p *Plan) restoreFile(key, dst *os.Root, name string, e Entry, uid, gid int) error {
	if err := dst.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + tmpSuffix
	if err := dst.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := dst.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = readEntry(key, e, p.encrypted, p.o.Identities, progressWriter{f, p.o.Progress})
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(mode(e))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dst.Chtimes(tmp, time.Time{}, e.MTime)
	}
	if err == nil {
		err = renameDurably(dst, tmp, name, true)
	}
	if err != nil {
		dst.Remove(tmp)
	}
	return err
}

// renameDurably renames inside r and syncs the folder, and the file again
// under its new name when it is one.
func renameDurably(r *os.Root, oldname, newname string, file bool) error {
	if err := r.Rename(oldname, newname); err != nil {
		return err
	}
	names := []string{path.Dir(newname)}
	if file {
		names = append(names, newname)
	}
	for _, n := range names {
		f, err := r.Open(n)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			return err
		}
	}
	return nil
}

// readEntry streams an entry's content, decrypted, into w and checks its
// size and hash. Its pieces are opened inside the backup folder r, each
// as large as the manifest says.
func readEntry(r *os.Root, e Entry, encrypted bool, ids []age.Identity, w io.Writer) error {
	var readers []io.Reader
	for _, p := range e.Pieces {
		f, size, err := openStored(r, p.Name)
		if err != nil {
			return err
		}
		defer f.Close()
		if size != p.Size {
			return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrCorrupt, p.Name, size, p.Size)
		}
		readers = append(readers, io.LimitReader(f, p.Size))
	}
	var src io.Reader = io.MultiReader(readers...)
	if encrypted {
		if len(ids) == 0 {
			return ErrNoIdentity
		}
		dr, err := age.Decrypt(src, ids...)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNoIdentity, err)
		}
		src = dr
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(h, w), io.LimitReader(src, e.Size+1), make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("%w: content differs from the manifest", ErrCorrupt)
	}
	return nil
}

type progressWriter struct {
	w io.Writer
	p *progress.Progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.Add(int64(n))
	return n, err
}
