// Command passeur is the host-side tool: it builds a board's rescue image
// (kernel and initramfs), lists the boards, and makes, signs and checks
// releases.
//
//	passeur build [-board qemu-x86_64] [-out out] [-cache .cache]
//	passeur boards
//	passeur release build|keygen|sign|verify|inspect ...
//	passeur mirror sync -upstream URL -root ROOT.json -account NAME [-tag TAG] -dir DIR
//	passeur repo init|publish|tag|account|test-tag|default|halt|resume|barrier|dead-end|boot-once|rotate|refresh|show ...
//	passeur key -image key.img | -dir /media/KEY  [-trust K.pub -release DIR,...] [-config F]
//	passeur netboot -dir DIR [-base URL] [-key name=value ...]
//	passeur serve -bundle DIR [-repo DIR] [-fleet-db FILE [-fleet-backups DIR]] [-listen ADDR]
//	passeur fleet enroll -db FILE -box ID -account NAME [-tag TAG] | list -db FILE
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/kernel"
	"github.com/passeur/passeur/image/rescue"
	"github.com/passeur/passeur/initramfs/inventory"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "passeur:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: passeur build|boards|release|repo|mirror|key|netboot|serve|fleet|stage [flags]")
	}
	switch args[0] {
	case "build":
		return buildCmd(args[1:], stdout, stderr)
	case "release":
		return releaseCmd(args[1:], stdout, stderr)
	case "key":
		return keyCmd(args[1:], stdout, stderr)
	case "netboot":
		return netbootCmd(args[1:], stdout, stderr)
	case "serve":
		return serveCmd(args[1:], stdout, stderr)
	case "repo":
		return repoCmd(args[1:], stdout, stderr)
	case "mirror":
		return mirrorCmd(args[1:], stdout, stderr)
	case "fleet":
		return fleetCmd(args[1:], stdout, stderr)
	case "stage":
		return stageCmd(args[1:], stdout, stderr)
	case "boards":
		for _, n := range board.Names() {
			b, err := board.Load(n)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%s\n", b.Name, b.Description)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q (known: build, boards, release, repo, mirror, key, netboot, serve, fleet, stage)", args[0])
}

func buildCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "qemu-x86_64", "board to build for")
	out := fs.String("out", "out", "output folder; the board's files go to <out>/<board>")
	cache := fs.String("cache", ".cache", "download cache folder")
	src := fs.String("src", ".", "passeur's source tree")
	trust := fs.String("trust", "", "comma-separated minisign public key files whose signatures the rescue system accepts")
	products := fs.String("product", "", "comma-separated release specs of the products the rescue system knows without a release (backup, recover)")
	repoRoot := fs.String("repo-root", "", "the trusted root of the release repositories (passeur repo init prints it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := board.Load(*boardName)
	if err != nil {
		return err
	}
	k, err := kernel.Fetch(b.Kernel.DebianPackage, filepath.Join(*cache, "kernel"), stderr)
	if err != nil {
		return err
	}
	repoAbs, err := filepath.Abs(*src)
	if err != nil {
		return err
	}
	trusted, err := absList(*trust)
	if err != nil {
		return err
	}
	specs, err := absList(*products)
	if err != nil {
		return err
	}
	res, err := rescue.Build(rescue.Options{Board: b, Kernel: k, RepoDir: repoAbs, OutDir: filepath.Join(*out, b.Name), Trusted: trusted, Products: specs, RepoRoot: *repoRoot, Built: rescue.SourceTime(repoAbs), Log: stderr})
	if err != nil {
		return err
	}
	kst, err := os.Stat(res.Vmlinuz)
	if err != nil {
		return err
	}
	if res.Reused {
		fmt.Fprintf(stdout, "board %s: up to date (kernel %s)\n", b.Name, k.Package)
	} else {
		fmt.Fprintf(stdout, "board %s: built in %.1fs (kernel %s, %d modules)\n", b.Name, res.Took.Seconds(), k.Package, res.Modules)
		fmt.Fprintf(stdout, "  initramfs cpio %s, zstd %s\n", inventory.HumanSize(res.CPIOSize), inventory.HumanSize(res.Size))
	}
	fmt.Fprintf(stdout, "  %s  %s\n", res.Vmlinuz, inventory.HumanSize(kst.Size()))
	fmt.Fprintf(stdout, "  %s  %s\n", res.Initramfs, inventory.HumanSize(res.Size))
	return nil
}

// absList makes each path of a comma-separated list absolute.
func absList(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out = append(out, abs)
	}
	return out, nil
}
