package rescue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/digest"
	"github.com/passeur/passeur/image/kernel"
	"github.com/passeur/passeur/image/kmod"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/release"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
)

// baseArchive is everything in the image that is not a Go command: the
// device nodes and directories of a u-root image, the board's modules with
// their modules.dep, the board definition the agent reads at boot, and the
// trusted public keys.
func baseArchive(b *board.Board, k *kernel.Kernel, trusted, products []string, repoRoot string, built time.Time) (*cpio.Archive, int, error) {
	a := uimage.DefaultRamfs()
	add := func(r cpio.Record) error { return a.WriteRecord(cpio.MakeReproducible(r)) }
	dir := func(p string) error {
		for _, d := range parents(p) {
			if _, ok := a.Get(d); !ok {
				if err := add(cpio.Directory(d, 0o755)); err != nil {
					return err
				}
			}
		}
		return nil
	}

	tree, err := kmod.OpenTree(k.Modules)
	if err != nil {
		return nil, 0, err
	}
	set, err := tree.Resolve(append(slices.Clone(b.Modules), b.ModulesOnDemand...))
	if err != nil {
		return nil, 0, fmt.Errorf("board %s: %w", b.Name, err)
	}
	modRoot := path.Join("lib/modules", k.Release)
	for _, n := range set.Names() {
		rel := set.Path(n)
		data, err := os.ReadFile(filepath.Join(k.Modules, rel))
		if err != nil {
			return nil, 0, err
		}
		p := path.Join(modRoot, rel)
		if err := dir(path.Dir(p)); err != nil {
			return nil, 0, err
		}
		if err := add(cpio.StaticFile(p, string(data), 0o644)); err != nil {
			return nil, 0, err
		}
	}
	var dep bytes.Buffer
	if err := set.WriteModulesDep(&dep); err != nil {
		return nil, 0, err
	}
	builtin, err := os.ReadFile(filepath.Join(k.Modules, "modules.builtin"))
	if err != nil {
		return nil, 0, err
	}
	bj, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, 0, err
	}
	files := []struct{ name, data string }{
		{path.Join(modRoot, "modules.dep"), dep.String()},
		{path.Join(modRoot, "modules.builtin"), string(builtin)},
		{board.ImageFile, string(bj)},
	}
	for _, t := range trusted {
		data, err := os.ReadFile(t)
		if err != nil {
			return nil, 0, fmt.Errorf("trusted key: %w", err)
		}
		files = append(files, struct{ name, data string }{path.Join(medialayout.TrustedDir, filepath.Base(t)), string(data)})
	}
	if repoRoot != "" {
		data, err := os.ReadFile(repoRoot)
		if err != nil {
			return nil, 0, fmt.Errorf("repository root: %w", err)
		}
		// A root's type is checked here; its signatures by the box, which
		// starts its chain of roots there.
		var root struct {
			Signed struct {
				Type string `json:"_type"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(data, &root); err != nil || root.Signed.Type != "root" {
			return nil, 0, fmt.Errorf("repository root %s: not a TUF root.json (%v)", repoRoot, err)
		}
		files = append(files, struct{ name, data string }{medialayout.RepoRoot, string(data)})
	}
	ksum, err := digest.File(k.Vmlinuz)
	if err != nil {
		return nil, 0, fmt.Errorf("the kernel: %w", err)
	}
	files = append(files, struct{ name, data string }{medialayout.KernelSHA256, ksum + "\n"})
	if !built.IsZero() {
		files = append(files, struct{ name, data string }{medialayout.Built, built.UTC().Format(time.RFC3339) + "\n"})
	}
	for _, p := range products {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, 0, fmt.Errorf("product profile: %w", err)
		}
		name, profile, err := release.ProfileOf(data)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p, err)
		}
		files = append(files, struct{ name, data string }{path.Join(medialayout.ProductsDir, name+".json"), string(profile)})
	}
	for _, f := range files {
		if err := dir(path.Dir(f.name)); err != nil {
			return nil, 0, err
		}
		if err := add(cpio.StaticFile(f.name, f.data, 0o644)); err != nil {
			return nil, 0, err
		}
	}
	return a, len(set.Names()), nil
}

// parents lists p and its parent directories, outermost first.
func parents(p string) []string {
	var out []string
	for ; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		out = append([]string{p}, out...)
	}
	return out
}
