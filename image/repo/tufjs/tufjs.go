// Package tufjs runs tuf-js, the sigstore project's TUF client written in
// JavaScript, against a TUF repository, so that Go tests can prove that a
// client which shares no code with go-tuf accepts what passeur publishes
// and refuses a bad repository with the error tuf-js names.
//
// Host-side test support only: it needs node and npm, and nothing under
// initramfs/ may import it.
package tufjs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
)

//go:embed package.json package-lock.json client.mjs
var files embed.FS

// ErrNoNode is node or npm missing from PATH.
var ErrNoNode = errors.New("node or npm not on PATH")

func embedded(name string) []byte {
	data, err := files.ReadFile(name)
	if err != nil {
		// The go:embed line above guarantees every name used here.
		return nil
	}
	return data
}

// lockHash names an install by its package-lock.json, so a changed lock
// gets a folder of its own.
func lockHash() string {
	sum := sha256.Sum256(embedded("package-lock.json"))
	return hex.EncodeToString(sum[:6])
}

func lookPath() (node, npm string, err error) {
	if node, err = exec.LookPath("node"); err != nil {
		return "", "", fmt.Errorf("tufjs: %w: %v", ErrNoNode, err)
	}
	if npm, err = exec.LookPath("npm"); err != nil {
		return "", "", fmt.Errorf("tufjs: %w: %v", ErrNoNode, err)
	}
	return node, npm, nil
}

// installed tells whether dir holds a finished install of the embedded lock.
func installed(dir string) bool {
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil || !bytes.Equal(lock, embedded("package-lock.json")) {
		return false
	}
	// npm writes its hidden lockfile last, once node_modules is complete.
	_, err = os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	return err == nil
}

// Install installs tuf-js with `npm ci` into <cacheDir>/tufjs-<hash of
// package-lock.json> and returns that folder, with client.mjs written
// next to node_modules. It does nothing but refresh client.mjs when the
// folder already holds that lock's install. The install is made in a
// temporary folder and renamed into place, so concurrent callers and a
// killed npm never leave a half install behind.
func Install(cacheDir string) (string, error) {
	_, npm, err := lookPath()
	if err != nil {
		return "", err
	}
	dir, err := filepath.Abs(filepath.Join(cacheDir, "tufjs-"+lockHash()))
	if err != nil {
		return "", fmt.Errorf("tufjs: %w", err)
	}
	if !installed(dir) {
		if err := npmCI(npm, dir); err != nil {
			return "", err
		}
	}
	if err := writeClient(dir); err != nil {
		return "", err
	}
	return dir, nil
}

func npmCI(npm, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("tufjs: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("tufjs: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range []string{"package.json", "package-lock.json"} {
		if err := os.WriteFile(filepath.Join(tmp, name), embedded(name), 0o644); err != nil {
			return fmt.Errorf("tufjs: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefix", tmp,
		"--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tufjs: npm ci in %s: %w\n%s", tmp, err, tail(out.Bytes()))
	}
	if err := os.Rename(tmp, dir); err != nil {
		if installed(dir) {
			return nil // another caller finished first
		}
		// A stale, unfinished folder from an older run: replace it.
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("tufjs: %w", err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("tufjs: %w", err)
		}
	}
	return nil
}

func writeClient(dir string) error {
	name := filepath.Join(dir, "client.mjs")
	want := embedded("client.mjs")
	if have, err := os.ReadFile(name); err == nil && bytes.Equal(have, want) {
		return nil
	}
	if err := atomicfile.WriteFile(name, want, 0o644); err != nil {
		return fmt.Errorf("tufjs: writing client.mjs: %w", err)
	}
	return nil
}

// Options is one run of the client.
type Options struct {
	// Dir is the folder Install returned.
	Dir string
	// MetadataURL and TargetsURL are the repository's base URLs: tuf-js
	// fetches <MetadataURL>/N.root.json, timestamp.json, N.snapshot.json,
	// N.targets.json and <TargetsURL>/<sha256>.<target>.
	MetadataURL string
	TargetsURL  string
	// TrustedRoot is the root.json the client starts from; it is used only
	// while CacheDir holds no root.json yet.
	TrustedRoot []byte
	// CacheDir is the client's state, kept between runs: trusted metadata
	// in CacheDir/metadata, downloaded targets in CacheDir/targets.
	CacheDir string
	// Target, when set, is downloaded and verified after the refresh.
	Target string
}

// Result is what tuf-js made of the repository.
type Result struct {
	OK bool `json:"ok"`
	// Error is the class of what tuf-js threw (ExpiredMetadataError,
	// BadVersionError, UnsignedMetadataError, LengthOrHashMismatchError,
	// DownloadLengthMismatchError, …), Classes it and its ancestors.
	Error   string   `json:"error"`
	Classes []string `json:"classes"`
	Message string   `json:"message"`
	// Target, File, Length and SHA256 are the downloaded target: its name,
	// where the client put it, and the length and hash of those bytes.
	Target string `json:"target"`
	File   string `json:"file"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	// Versions are the versions of the metadata the client trusts at the
	// end of the run, by role.
	Versions map[string]int64 `json:"versions"`
	// Log is what node wrote on stderr (tuf-js's log with DEBUG=tuf:*).
	Log string `json:"-"`
}

// String is the result as a test prints it.
func (r Result) String() string {
	if r.OK {
		return fmt.Sprintf("accepted %v (target %q, %d bytes, sha256 %s)", r.Versions, r.Target, r.Length, r.SHA256)
	}
	return fmt.Sprintf("refused: %s: %s", r.Error, r.Message)
}

type clientArgs struct {
	MetadataURL string `json:"metadataUrl"`
	TargetsURL  string `json:"targetsUrl"`
	TrustedRoot string `json:"trustedRoot,omitempty"`
	MetadataDir string `json:"metadataDir"`
	TargetDir   string `json:"targetDir"`
	Target      string `json:"target,omitempty"`
}

// Refresh runs the client once: it refreshes the metadata and downloads
// o.Target if set. A refusal by tuf-js is a Result with OK false and a nil
// error; the error is for a run that could not happen.
func Refresh(ctx context.Context, o Options) (Result, error) {
	node, _, err := lookPath()
	if err != nil {
		return Result{}, err
	}
	if o.Dir == "" || o.CacheDir == "" || o.MetadataURL == "" || o.TargetsURL == "" {
		return Result{}, errors.New("tufjs: Dir, CacheDir, MetadataURL and TargetsURL are required")
	}
	cache, err := filepath.Abs(o.CacheDir)
	if err != nil {
		return Result{}, fmt.Errorf("tufjs: %w", err)
	}
	a := clientArgs{
		MetadataURL: o.MetadataURL,
		TargetsURL:  o.TargetsURL,
		MetadataDir: filepath.Join(cache, "metadata"),
		TargetDir:   filepath.Join(cache, "targets"),
		Target:      o.Target,
	}
	if len(o.TrustedRoot) > 0 {
		a.TrustedRoot = filepath.Join(cache, "trusted-root.json")
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return Result{}, fmt.Errorf("tufjs: %w", err)
		}
		if err := os.WriteFile(a.TrustedRoot, o.TrustedRoot, 0o644); err != nil {
			return Result{}, fmt.Errorf("tufjs: writing trusted root: %w", err)
		}
	}
	arg, err := json.Marshal(a)
	if err != nil {
		return Result{}, fmt.Errorf("tufjs: %w", err)
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join(o.Dir, "client.mjs"), string(arg))
	cmd.Dir = o.Dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(runErr, &exit):
		code = exit.ExitCode()
	case runErr != nil:
		return Result{}, fmt.Errorf("tufjs: running client.mjs: %w\n%s", runErr, tail(stderr.Bytes()))
	}
	line := lastLine(stdout.Bytes())
	var r Result
	if err := json.Unmarshal(line, &r); err != nil {
		return Result{}, fmt.Errorf("tufjs: client.mjs exited %d without a JSON line (%v): %q\n%s", code, err, line, tail(stderr.Bytes()))
	}
	switch {
	case code == 0 && r.OK, code == 1 && !r.OK:
		r.Log = stderr.String()
		return r, nil
	case code == 2:
		return Result{}, fmt.Errorf("tufjs: client.mjs: %s: %s", r.Error, r.Message)
	default:
		return Result{}, fmt.Errorf("tufjs: client.mjs exited %d with %s\n%s", code, line, tail(stderr.Bytes()))
	}
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return bytes.TrimSpace(lines[len(lines)-1])
}

// tail is the end of a command's output, enough to see why it failed.
func tail(b []byte) string {
	const max = 4000
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}
