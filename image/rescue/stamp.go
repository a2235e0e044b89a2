package rescue

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Stamp fingerprints every input of an image: passeur's Go sources (tests
// excepted), go.mod and go.sum, the board definitions, the board's name and
// the versioned kernel package, the files put in the image as they are
// (trusted keys, product specs). Same stamp, same image.
func Stamp(repo, boardName, kernelPkg string, trusted []string) (string, error) {
	var files []string
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != repo && (strings.HasPrefix(name, ".") || name == "out" || name == "tests" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if (strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) ||
			name == "go.mod" || name == "go.sum" || name == "board.json" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint sources: %w", err)
	}
	sort.Strings(files)
	files = append(files, trusted...)
	h := sha256.New()
	fmt.Fprintf(h, "board %s\nkernel %s\ncommands %v\n", boardName, kernelPkg, ShellCommands)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(repo, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = f
		}
		fmt.Fprintf(h, "%s %d %x\n", rel, len(data), sha256.Sum256(data))
	}
	return fmt.Sprintf("%x\n", h.Sum(nil)), nil
}
