package kmod

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Tree is a kernel module tree: lib/modules/<release> of a kernel package.
type Tree struct {
	Dir     string            // the tree's root directory on the host
	Path    map[string]string // canonical name -> path relative to Dir
	Builtin map[string]bool   // canonical names of modules built into the kernel
}

// OpenTree indexes the modules under dir and reads its modules.builtin.
func OpenTree(dir string) (*Tree, error) {
	t := &Tree{Dir: dir, Path: map[string]string{}, Builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		t.Path[Canonical(path.Base(rel))] = filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index module tree %s: %w", dir, err)
	}
	if len(t.Path) == 0 {
		return nil, fmt.Errorf("index module tree %s: no uncompressed .ko modules under kernel/", dir)
	}
	f, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("module tree %s: %w", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			t.Builtin[Canonical(path.Base(line))] = true
		}
	}
	return t, sc.Err()
}

// Resolve returns the modules to ship for the wanted ones: every wanted
// module and everything it depends on, built-in ones excepted, read from the
// modules' own .modinfo. A soft pre-dependency becomes a dependency when a
// module of the set provides it (by name or alias), so that it loads first.
func (t *Tree) Resolve(wanted []string) (*Set, error) {
	s := &Set{deps: map[string][]string{}, path: map[string]string{}}
	infos := map[string]Info{}
	var visit func(name, from string) error
	visit = func(name, from string) error {
		name = Canonical(name)
		if _, done := s.path[name]; done || t.Builtin[name] {
			return nil
		}
		rel, ok := t.Path[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %q (needed by %s) is not in %s", name, from, t.Dir)
			}
			return fmt.Errorf("module %q is neither in %s nor built in", name, t.Dir)
		}
		info, err := ReadInfo(filepath.Join(t.Dir, rel))
		if err != nil {
			return err
		}
		s.path[name] = rel
		s.deps[name] = nil
		infos[name] = info
		for _, d := range info.Depends {
			d = Canonical(d)
			if t.Builtin[d] {
				continue
			}
			s.deps[name] = append(s.deps[name], d)
			if err := visit(d, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, w := range wanted {
		if err := visit(w, ""); err != nil {
			return nil, err
		}
	}
	provider := map[string]string{}
	for name, info := range infos {
		provider[name] = name
		for _, a := range info.Aliases {
			provider[Canonical(a)] = name
		}
	}
	for name, info := range infos {
		for _, soft := range info.SoftPre {
			if p, ok := provider[Canonical(soft)]; ok && p != name && !slices.Contains(s.deps[name], p) {
				s.deps[name] = append(s.deps[name], p)
			}
		}
	}
	return s, nil
}
