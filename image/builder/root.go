package builder

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
)

// makeRoot builds the root's Go commands, adds its files and folders, and
// makes a squashfs of it with mksquashfs, reproducibly.
func makeRoot(img string, r Root, arch, repo, tmp string, epoch int64) error {
	stage := filepath.Join(tmp, "root")
	for _, d := range append([]string{"proc", "sys", "dev", "run", "tmp", "state", "srv", "etc"}, r.Dirs...) {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return err
		}
	}
	var paths []string
	for p := range r.Commands {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		out := filepath.Join(stage, p)
		os.MkdirAll(filepath.Dir(out), 0o755)
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid= "+r.LDFlags, "-o", out, r.Commands[p])
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s for the root: %v\n%s", r.Commands[p], err, b)
		}
	}
	for p, content := range r.Files {
		out := filepath.Join(stage, p)
		os.MkdirAll(filepath.Dir(out), 0o755)
		if err := os.WriteFile(out, []byte(content), 0o644); err != nil {
			return err
		}
	}
	os.Remove(img)
	// SOURCE_DATE_EPOCH sets every time stamp mksquashfs writes.
	cmd := exec.Command("mksquashfs", stage, img, "-noappend", "-comp", "zstd", "-all-root", "-quiet", "-no-progress")
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch, 10))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs: %v\n%s", err, b)
	}
	return nil
}
