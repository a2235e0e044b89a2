package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/media"
)

// Info is one backup folder of a host.
type Info struct {
	Name     string // the folder's name, its UTC stamp
	Dir      string
	Complete bool
}

// List returns the backups of host under the media's root, oldest first.
// A host name is not a machine: boxes may share one (ChooseFor).
func List(mediaRoot, host string) ([]Info, error) {
	base := filepath.Join(mediaRoot, medialayout.BackupDir, HostName(host))
	ents, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, media.Failure(err)
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(base, e.Name())
		out = append(out, Info{Name: e.Name(), Dir: d, Complete: IsComplete(d)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Choose picks the backup to restore: the one named, or else the newest
// complete one. It reads no backup, so it cannot tell whose a backup is:
// ChooseFor can.
func Choose(list []Info, name string) (Info, error) {
	for i := len(list) - 1; i >= 0; i-- {
		b := list[i]
		if name != "" && b.Name != name {
			continue
		}
		if !b.Complete {
			if name != "" {
				return b, fmt.Errorf("%w: %s was never marked complete (interrupted?)", ErrIncomplete, name)
			}
			continue
		}
		return b, nil
	}
	var names []string
	for _, b := range list {
		names = append(names, b.Name)
	}
	if name != "" {
		return Info{}, fmt.Errorf("%w: none named %q (found: %s)", ErrNoBackup, name, strings.Join(names, ", "))
	}
	return Info{}, fmt.Errorf("%w (found: %s)", ErrNoBackup, strings.Join(names, ", "))
}

// ChooseFor picks, like Choose, the backup to restore, among those taken
// on this machine (o.Machine): the newest complete one passes over the
// backups other machines sharing the host name left; the one named is
// refused when another machine took it (ErrOtherMachine). Each candidate's
// completeness, seal (o.Secret) and manifest (o.Identities) are checked
// on the way, and any other refusal of the newest candidate is returned,
// not passed over: a tampered newest backup is reported, and an older one
// is never restored in its place without the operator naming it.
func ChooseFor(list []Info, name string, o RestoreOptions) (Info, error) {
	var others []string
	for {
		b, err := Choose(list, name)
		if err != nil {
			if len(others) > 0 {
				err = fmt.Errorf("%w; passed over, taken on other machines: %s", err, strings.Join(others, ", "))
			}
			return b, err
		}
		_, err = inspectDir(b.Dir, o)
		if name != "" || !errors.Is(err, ErrOtherMachine) {
			return b, err
		}
		others = append(others, b.Name)
		list = slices.DeleteFunc(slices.Clone(list), func(i Info) bool { return i.Name == b.Name })
	}
}
