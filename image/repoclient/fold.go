package repoclient

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/repo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Elsewhere is the folder of a box's repository state where a caller puts
// what other places remember (the box's own disks), one folder each, laid
// out as a state: roots/, metadata/, seen.json. Fold takes from them what
// verifies and is newer.
const Elsewhere = "elsewhere"

const maxElsewhere = 8

// Fold takes into state what the folders under state/Elsewhere remember
// that verifies from root and is newer than what state holds: the roots
// that chain from root, version after version; for each metadata file
// (timestamp, snapshot, targets, delegated targets), the highest version
// whose signatures the chain's final root (or, for a delegated role, the
// verified targets) accepts; the seen.json whose timestamp verifies with
// the latest time.
// State's own files are held to the same rule: one that does not verify
// loses to one that does. Expiry is not looked at here: Open checks it.
// Fold returns what it took, as "FOLDER: FILE v VERSION", and removes
// state/Elsewhere.
func Fold(root []byte, state string) ([]string, error) {
	dir := filepath.Join(state, Elsewhere)
	defer os.RemoveAll(dir)
	ents, _ := os.ReadDir(dir)
	var others []string
	for _, e := range ents {
		if e.IsDir() && len(others) < maxElsewhere {
			others = append(others, e.Name())
		}
	}
	sort.Strings(others)
	if len(others) == 0 {
		return nil, nil
	}
	var took []string

	// Roots: the chain from the baked root, each next one from the state
	// or, when the state lacks it or holds one that does not chain, from
	// elsewhere.
	chain, err := trustedmetadata.New(root)
	if err != nil {
		return nil, fmt.Errorf("%w: trusted root: %w", ErrMetadata, err)
	}
	final := root
	for v := chain.Root.Signed.Version + 1; v <= chain.Root.Signed.Version+maxRoots; v++ {
		name := fmt.Sprintf("%d.root.json", v)
		found := false
		for i, src := range append([]string{state}, others...) {
			if i > 0 {
				src = filepath.Join(dir, src)
			}
			data, err := readBounded(filepath.Join(src, rootsDir, name), repo.MaxRootBytes)
			if err != nil {
				continue
			}
			if _, err := chain.UpdateRoot(data); err != nil {
				continue
			}
			final, found = data, true
			if i > 0 {
				if err := write(filepath.Join(state, rootsDir, name), data); err != nil {
					return took, err
				}
				took = append(took, fmt.Sprintf("%s: %s/%s", others[i-1], rootsDir, name))
			}
			break
		}
		if !found {
			break
		}
	}

	// Metadata: each folder verified on its own, from the final root.
	type best struct {
		version int64
		data    []byte
		from    string // "" for the state's own
	}
	bests := map[string]best{}
	for i, src := range append([]string{""}, others...) {
		folder := filepath.Join(dir, src)
		if i == 0 {
			folder = state
		}
		for name, v := range verifiedMetadata(final, filepath.Join(folder, "metadata")) {
			if b, ok := bests[name]; !ok || v.version > b.version {
				bests[name] = best{v.version, v.data, src}
			}
		}
	}
	names := make([]string, 0, len(bests))
	for name := range bests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := bests[name]
		if b.from == "" {
			continue
		}
		p := filepath.Join(state, "metadata", name)
		if old, _ := os.ReadFile(p); bytes.Equal(old, b.data) {
			continue
		}
		if err := write(p, b.data); err != nil {
			return took, err
		}
		took = append(took, fmt.Sprintf("%s: metadata/%s v%d", b.from, name, b.version))
	}

	// The time seen: the remembered timestamp that verifies with the
	// latest time.
	paths := []string{filepath.Join(state, SeenFile)}
	for _, src := range others {
		paths = append(paths, filepath.Join(dir, src, SeenFile))
	}
	if data, _, i := newestSeen(chain.Root, paths...); i > 0 {
		if err := write(paths[0], data); err != nil {
			return took, err
		}
		took = append(took, fmt.Sprintf("%s: %s", others[i-1], SeenFile))
	}
	return took, nil
}

type verified struct {
	version int64
	data    []byte
}

// verifiedMetadata reads the metadata folder md as a box's local
// metadata is read, from the root rootData: the timestamp, then the
// snapshot, then the targets, then the targets' delegated roles, each
// kept only if it verifies (signatures, type, the versions the one before
// names); expiry is not checked.
func verifiedMetadata(rootData []byte, md string) map[string]verified {
	out := map[string]verified{}
	tm, err := trustedmetadata.New(rootData)
	if err != nil {
		return out
	}
	tm.RefTime = time.Time{} // signatures and versions only: expiry is Open's
	read := func(name string, bound int64) []byte {
		data, err := readBounded(filepath.Join(md, name), bound)
		if err != nil {
			return nil
		}
		return data
	}
	data := read(metadata.TIMESTAMP+".json", repo.MaxTimestampBytes)
	ts, err := tm.UpdateTimestamp(data)
	if err != nil {
		return out
	}
	out[metadata.TIMESTAMP+".json"] = verified{ts.Signed.Version, data}
	data = read(metadata.SNAPSHOT+".json", repo.MaxSnapshotBytes)
	sn, err := tm.UpdateSnapshot(data, true)
	if err != nil {
		return out
	}
	out[metadata.SNAPSHOT+".json"] = verified{sn.Signed.Version, data}
	data = read(metadata.TARGETS+".json", repo.MaxTargetsBytes)
	tg, err := tm.UpdateTargets(data)
	if err != nil {
		return out
	}
	out[metadata.TARGETS+".json"] = verified{tg.Signed.Version, data}
	if tg.Signed.Delegations == nil {
		return out
	}
	for _, r := range tg.Signed.Delegations.Roles {
		if !StateName.MatchString(r.Name + ".json") {
			continue
		}
		data := read(r.Name+".json", repo.MaxTargetsBytes)
		d, err := tm.UpdateDelegatedTargets(data, r.Name, metadata.TARGETS)
		if err != nil {
			continue
		}
		out[r.Name+".json"] = verified{d.Signed.Version, data}
	}
	return out
}

// StateName is what the name of a file in a box's repository state must
// match.
var StateName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,63}\.json$`)

func write(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o644)
}
