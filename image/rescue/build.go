// Package rescue assembles a board's rescue initramfs with u-root's mkuimage
// library, in busybox mode: the passeur agent as /init, u-root's core
// commands for the debug shell, the board's kernel modules with a generated
// modules.dep, the board definition; then compressed with zstd.
package rescue

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/kernel"
	"github.com/passeur/passeur/image/ownimage"
	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/uimage"
	"github.com/u-root/uio/llog"
)

// AgentPackage is the Go package of /init.
const AgentPackage = "github.com/passeur/passeur/cmds/passeur-agent"

// ShellCommands are the u-root core commands in the image, for a person
// debugging a box from the debug shell.
var ShellCommands = []string{
	"blkid", "cat", "chmod", "cp", "date", "dd", "df", "dhclient", "dmesg", "du",
	"echo", "find", "free", "gosh", "gpt", "grep", "head", "hexdump", "insmod",
	"ip", "kexec", "kill", "ln", "losetup", "ls", "lsmod", "mkdir", "more",
	"mount", "mv", "ping", "poweroff", "ps", "readlink", "rm", "rmmod", "shasum",
	"sleep", "strings", "sync", "tail", "tee", "touch", "truncate", "umount",
	"uname", "uptime", "wc", "which",
}

// Options says what to build.
type Options struct {
	Board  *board.Board
	Kernel *kernel.Kernel
	// RepoDir is passeur's module root; the Go builds run there.
	RepoDir string
	// OutDir receives vmlinuz, initramfs.cpio.zst and a build stamp.
	OutDir string
	// Trusted are the minisign public key files the rescue system accepts
	// releases and repositories signed by; they go to medialayout.TrustedDir.
	Trusted []string
	// Products are release specs (or manifests) whose product profile the
	// rescue image keeps in medialayout.ProductsDir: with them it backs up and
	// recovers even from a key holding no release.
	Products []string
	// RepoRoot is the trusted root of the release repositories (a TUF
	// root.json, passeur repo init): it goes to medialayout.RepoRoot.
	RepoRoot string
	// Built, when set, goes to medialayout.Built (SourceTime gives it).
	Built time.Time
	Log   io.Writer
}

// Image is an initramfs to assemble: Go commands in one busybox binary,
// one of them /init, with the board's kernel modules and definition.
type Image struct {
	Board    *board.Board
	Kernel   *kernel.Kernel
	RepoDir  string   // the module root the Go builds run in
	Commands []string // Go packages of the busybox
	Init     string   // command linked to /init
	Shell    string   // command linked to /bin/sh; none if empty
	Trusted  []string // public key files copied to medialayout.TrustedDir
	Products []string // release specs whose profiles go to medialayout.ProductsDir
	RepoRoot string   // the repositories' trusted root, to medialayout.RepoRoot
	Built    time.Time
	Log      io.Writer
	// FromScratch compiles every package again (go build -a, as gobusybox
	// always asks), for a reproducibility check. Otherwise Go's build
	// cache serves the packages that did not change: -trimpath keys them
	// on their content, not on the temporary tree gobusybox builds in.
	FromScratch bool
}

// Assemble writes img, zstd-compressed, to path. It returns the sizes
// before and after compression and the number of kernel modules shipped.
func Assemble(img Image, path string) (cpioSize, size int64, modules int, err error) {
	base, nmods, err := baseArchive(img.Board, img.Kernel, img.Trusted, img.Products, img.RepoRoot, img.Built)
	if err != nil {
		return 0, 0, 0, err
	}
	tmp, err := os.MkdirTemp("", "passeur-initramfs-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(tmp)
	cpioPath := filepath.Join(tmp, "initramfs.cpio")
	// goshliner: the debug shell edits lines with peterh/liner, made for
	// plain terminals, rather than the bubbletea editor, which redraws two
	// lines on every key over the serial console and, in the version
	// bubbline allows (bubbletea 0.24.1), deadlocks now and then when a
	// line is entered (charmbracelet/bubbletea#741).
	env := golang.Default(golang.DisableCGO(), golang.WithGOARCH(img.Board.Arch), golang.WithWorkingDir(img.RepoDir),
		golang.WithBuildTag("goshliner"))
	if !img.FromScratch {
		// Where the wrapper cannot run (a temporary folder mounted
		// noexec), gobusybox's own go compiles everything again.
		if gocmd, err := cachedGo(tmp, env.GOROOT); err == nil {
			env.Apply(golang.WithCompiler(gocmd))
		} else if img.Log != nil {
			fmt.Fprintf(img.Log, "initramfs build: every package compiled again (%v)\n", err)
		}
	}
	l := llog.New(slog.LevelWarn, llog.WritePrintf(img.Log))
	err = uimage.Create(l,
		uimage.WithReplaceEnv(env),
		uimage.WithTempDir(tmp),
		uimage.WithBaseArchive(base),
		uimage.WithBusyboxCommands(img.Commands...),
		uimage.WithInit(img.Init),
		uimage.WithShell(img.Shell),
		uimage.WithSkipLDD(),
		uimage.WithCPIOOutput(cpioPath),
	)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("build initramfs for %s: %w", img.Board.Name, err)
	}
	sealed := filepath.Join(tmp, "initramfs.sealed.cpio")
	if err := seal(cpioPath, sealed); err != nil {
		return 0, 0, 0, fmt.Errorf("seal initramfs for %s: %w", img.Board.Name, err)
	}
	cpioSize, size, err = compressFile(sealed, path)
	return cpioSize, size, nmods, err
}

// seal writes the archive at src to dst with the manifest the rescue
// writes itself again from (ownimage.Seal).
func seal(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	err = ownimage.Seal(in, w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// cachedGo writes, in dir, a go command that runs the real one (GOROOT's,
// or the one on $PATH) without -a: gobusybox forces every package to be
// compiled again at each build, about a minute of two cores for a rescue
// or a release's initramfs, where Go's build cache already holds them.
func cachedGo(dir, goroot string) (string, error) {
	real := filepath.Join(goroot, "bin", "go")
	if goroot == "" || !exists(real) {
		var err error
		if real, err = exec.LookPath("go"); err != nil {
			return "", err
		}
	}
	script := "#!/bin/sh\n# go without -a (see passeur's image/rescue cachedGo)\n" +
		"for arg do shift; [ \"$arg\" = -a ] || set -- \"$@\" \"$arg\"; done\n" +
		"exec '" + strings.ReplaceAll(real, "'", `'\''`) + "' \"$@\"\n"
	bin := filepath.Join(dir, "go-cached")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(bin, "go")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command(p, "version").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s version: %v: %s", p, err, bytes.TrimSpace(out))
	}
	return p, nil
}

// Result says what was built.
type Result struct {
	Vmlinuz, Initramfs string
	CPIOSize, Size     int64 // initramfs bytes before and after zstd
	Modules            int
	Reused             bool // the outputs were up to date
	Took               time.Duration
}

// Build builds the board's vmlinuz and initramfs into OutDir, or reuses them
// when their inputs (passeur's sources, the board, the kernel) are unchanged.
func Build(o Options) (*Result, error) {
	start := time.Now()
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Vmlinuz: filepath.Join(o.OutDir, "vmlinuz"), Initramfs: filepath.Join(o.OutDir, "initramfs.cpio.zst")}
	stamp, err := Stamp(o.RepoDir, o.Board.Name, o.Kernel.Package, append(append(append([]string(nil), o.Trusted...), o.Products...), o.RepoRoot))
	if err != nil {
		return nil, err
	}
	stampFile := filepath.Join(o.OutDir, "build.stamp")
	if old, err := os.ReadFile(stampFile); err == nil && string(old) == stamp && exists(res.Vmlinuz) && exists(res.Initramfs) {
		res.Reused = true
		st, _ := os.Stat(res.Initramfs)
		res.Size = st.Size()
		return res, nil
	}
	os.Remove(stampFile)

	pkgs := []string{AgentPackage}
	for _, c := range ShellCommands {
		pkgs = append(pkgs, "github.com/u-root/u-root/cmds/core/"+c)
	}
	res.CPIOSize, res.Size, res.Modules, err = Assemble(Image{
		Board: o.Board, Kernel: o.Kernel, RepoDir: o.RepoDir, Log: o.Log,
		Commands: pkgs, Init: "passeur-agent", Shell: "gosh", Trusted: o.Trusted, Products: o.Products, RepoRoot: o.RepoRoot, Built: o.Built,
	}, res.Initramfs)
	if err != nil {
		return nil, err
	}
	if err := copyFile(o.Kernel.Vmlinuz, res.Vmlinuz); err != nil {
		return nil, err
	}
	if err := os.WriteFile(stampFile, []byte(stamp), 0o644); err != nil {
		return nil, err
	}
	res.Took = time.Since(start)
	return res, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// SourceTime is when the sources in dir were committed: SOURCE_DATE_EPOCH
// when set, else the time of git's HEAD commit, else the zero time. It is
// the same for the same commit, so the image stays reproducible.
func SourceTime(dir string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	out, err := exec.Command("git", "-C", dir, "log", "-1", "--format=%ct").Output()
	if err != nil {
		return time.Time{}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
