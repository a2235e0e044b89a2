package tufjs

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	installOnce sync.Once
	installDir  string
	installErr  error
)

// ForTest installs tuf-js once per test binary into $PASSEUR_CACHE, else
// .cache at the module root, and returns its folder. Without node the
// test fails, or skips when PASSEUR_NO_NODE=1 says so.
func ForTest(t testing.TB) string {
	t.Helper()
	installOnce.Do(func() {
		dir := os.Getenv("PASSEUR_CACHE")
		if dir == "" {
			dir, installErr = moduleCache()
			if installErr != nil {
				return
			}
		}
		installDir, installErr = Install(dir)
	})
	if errors.Is(installErr, ErrNoNode) && os.Getenv("PASSEUR_NO_NODE") == "1" {
		t.Skipf("PASSEUR_NO_NODE=1: %v", installErr)
	}
	if installErr != nil {
		t.Fatalf("%v (set PASSEUR_NO_NODE=1 to skip these tests on a machine without node)", installErr)
	}
	return installDir
}

// moduleCache is .cache beside the go.mod above the working folder.
func moduleCache() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working folder")
		}
		dir = parent
	}
}
