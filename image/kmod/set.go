package kmod

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Set is a closed set of modules: each with its path in the tree and its
// direct dependencies, all members of the set.
type Set struct {
	path map[string]string
	deps map[string][]string
}

// NewSet builds a Set from paths (canonical name -> path relative to the
// tree) and direct dependencies. It fails if a dependency is not in the set.
func NewSet(paths map[string]string, deps map[string][]string) (*Set, error) {
	s := &Set{path: paths, deps: map[string][]string{}}
	for name := range paths {
		for _, d := range deps[name] {
			if _, ok := paths[Canonical(d)]; !ok {
				return nil, fmt.Errorf("module %q depends on %q, which is not in the set", name, d)
			}
			s.deps[name] = append(s.deps[name], Canonical(d))
		}
	}
	return s, nil
}

// Names lists the modules of the set, sorted.
func (s *Set) Names() []string {
	var n []string
	for k := range s.path {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Path returns the module's path relative to the tree.
func (s *Set) Path(name string) string { return s.path[Canonical(name)] }

// LoadOrder returns every transitive dependency of name, then name itself,
// in an order where each module comes after everything it needs.
func (s *Set) LoadOrder(name string) []string {
	var order []string
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		deps := append([]string(nil), s.deps[n]...)
		sort.Strings(deps)
		for _, d := range deps {
			walk(d)
		}
		order = append(order, n)
	}
	walk(Canonical(name))
	return order
}

// WriteModulesDep writes the set in depmod's modules.dep format: one line per
// module, "path: dep-paths...", the dependencies listed as depmod does, the
// one to load last first.
func (s *Set) WriteModulesDep(w io.Writer) error {
	for _, n := range s.Names() {
		order := s.LoadOrder(n)
		var deps []string
		for i := len(order) - 2; i >= 0; i-- {
			deps = append(deps, s.path[order[i]])
		}
		line := s.path[n] + ":"
		if len(deps) > 0 {
			line += " " + strings.Join(deps, " ")
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
