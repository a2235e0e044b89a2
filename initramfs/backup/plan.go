package backup

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// placed is an entry to restore and where it goes under the root.
type placed struct {
	Entry
	dest string
}

// plan lists what a restore writes, in order, and refuses the whole
// backup when one entry is outside the allowed paths (ErrNotAllowed), or
// goes where another goes, below a symbolic link the restore makes, or is
// a link that is absolute or leads out of the allowed paths
// (ErrUnsafeEntry). The manifest passed checkManifest: paths are clean and
// absolute.
func plan(m *Manifest, o RestoreOptions) ([]placed, error) {
	var allowed []string
	for _, p := range o.Paths {
		allowed = append(allowed, path.Clean("/"+p))
	}
	steps := restored(m.Entries, o.Map)
	links, linkDests, dests := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range steps {
		if !under(s.Path, allowed) {
			return nil, fmt.Errorf("%w: %s (allowed: %s)", ErrNotAllowed, s.Path, strings.Join(allowed, ", "))
		}
		if s.dest == "/" || dests[s.dest] {
			return nil, fmt.Errorf("%w: %s goes to %s, where another entry goes", ErrUnsafeEntry, s.Path, s.dest)
		}
		dests[s.dest] = true
		if s.Type == "symlink" {
			if err := checkTarget(s.Path, s.Target, allowed); err != nil {
				return nil, fmt.Errorf("%w: %s -> %s: %s", ErrUnsafeEntry, s.Path, s.Target, err)
			}
			links[s.Path], linkDests[s.dest] = true, true
		}
	}
	for _, s := range steps {
		for _, p := range []struct {
			path  string
			links map[string]bool
		}{{s.Path, links}, {s.dest, linkDests}} {
			for a := path.Dir(p.path); a != "/"; a = path.Dir(a) {
				if p.links[a] {
					return nil, fmt.Errorf("%w: %s is below the symbolic link %s", ErrUnsafeEntry, p.path, a)
				}
			}
		}
	}
	return steps, nil
}

// restored lists what is put back and where: system entries, except those
// a recovered entry replaces, and recovered entries, folders first.
func restored(all []Entry, mapper func(string) string) []placed {
	recovered := map[string]bool{}
	for _, e := range all {
		if e.Origin == OriginRecovered {
			recovered[e.Path] = true
		}
	}
	var es []Entry
	for _, e := range all {
		if !e.Restored() || e.Origin == OriginSystem && recovered[e.Path] {
			continue
		}
		es = append(es, e)
	}
	sortEntries(es)
	var out []placed
	for _, e := range es {
		dest := e.Path
		if mapper != nil {
			dest = mapper(e.Path)
		}
		if dest == "" {
			continue
		}
		out = append(out, placed{e, path.Clean("/" + dest)})
	}
	return out
}

// sortEntries orders entries for restore: folders before what they hold.
func sortEntries(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Path < es[j].Path })
}

// checkTarget accepts a link's target when it is relative and clean (its
// only ".." lead, so no other link met on the way can turn it around),
// climbs no higher than the root, and resolves, from the link's folder,
// under an allowed path.
func checkTarget(link, target string, allowed []string) error {
	if path.IsAbs(target) {
		return fmt.Errorf("absolute target")
	}
	if path.Clean(target) != target {
		return fmt.Errorf("target not clean")
	}
	ups := 0
	for rest := target; rest == ".." || strings.HasPrefix(rest, "../"); rest = strings.TrimPrefix(rest[2:], "/") {
		ups++
	}
	dir := path.Dir(link)
	if depth := strings.Count(dir, "/"); dir == "/" && ups > 0 || ups > depth {
		return fmt.Errorf("target climbs above the root")
	}
	if !under(path.Join(dir, target), allowed) {
		return fmt.Errorf("target outside the allowed paths")
	}
	return nil
}

// under reports whether p is one of allowed or below one.
func under(p string, allowed []string) bool {
	for _, a := range allowed {
		if p == a || a == "/" || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}
