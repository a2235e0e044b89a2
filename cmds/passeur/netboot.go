package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/netboot"
)

// keyList collects repeated -key name=value flags.
type keyList map[string]string

func (k keyList) String() string { return fmt.Sprint(map[string]string(k)) }

func (k keyList) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not name=value", s)
	}
	k[strings.TrimPrefix(name, "passeur.")] = v
	return nil
}

// netbootCmd writes a board's netboot bundle.
//
//	passeur netboot -dir out/netboot -key mode=install -key unattended=yes -key repo=http://…
func netbootCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("netboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "qemu-x86_64", "board the bundle boots")
	out := fs.String("out", "out", "build output folder (passeur build)")
	dir := fs.String("dir", "", "folder to write the bundle to (serve it over HTTP)")
	base := fs.String("base", "", "HTTP URL the kernel and initramfs are fetched from, when the script is handed out by TFTP (default: beside the script)")
	keys := keyList{}
	fs.Var(keys, "key", "a passeur key of the run, name=value (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("netboot: give -dir")
	}
	b, err := board.Load(*boardName)
	if err != nil {
		return err
	}
	bundle := netboot.Bundle{Kernel: filepath.Join(*out, b.Name, "vmlinuz"), Initramfs: filepath.Join(*out, b.Name, "initramfs.cpio.zst"),
		BoardCmdline: b.Kernel.Cmdline, Keys: keys, Base: *base}
	if err := netboot.Write(*dir, bundle); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: serve it over HTTP and chain http://<server>/%s from iPXE\n", *dir, netboot.ScriptFile)
	return nil
}

// serveCmd serves a netboot bundle and a repository over HTTP for a lab
// bench, logging each request, and with -fleet-db the fleet: the boxes'
// reports and the fleet page, with each account's rollout as the
// repository's policy says.
//
//	passeur serve -bundle out/netboot -repo /srv/repo -fleet-db /srv/fleet.db -fleet-backups /srv/backups -listen :8080
func serveCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bundle := fs.String("bundle", "", "netboot bundle folder (passeur netboot -dir)")
	repoDir := fs.String("repo", "", "repository or mirror folder (passeur repo init, passeur mirror sync), served under "+netboot.RepoPath)
	fleetDB := fs.String("fleet-db", "", "the fleet's database (passeur fleet enroll): boxes report to "+fleet.ReportPath+", the fleet page is "+fleet.Path)
	backups := fs.String("fleet-backups", "", "with -fleet-db: the folder where boxes applying a staged update upload their verified backup before writing ("+fleet.BackupPath+"/RUN, kept as BOX/RUN.tar)")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on (\":8080\" for a lab network)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf := log.New(stderr, "serve: ", log.LstdFlags).Printf
	s := &netboot.Server{Bundle: *bundle, Repo: *repoDir, Log: logf}
	if err := s.Check(); err != nil {
		return err
	}
	if *fleetDB != "" {
		store, err := fleet.Open(*fleetDB)
		if err != nil {
			return err
		}
		f := fleetServer(store, *repoDir, logf)
		f.Backups = *backups
		s.Fleet = f
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var what []string
	if *bundle != "" {
		what = append(what, fmt.Sprintf("the bundle %s at http://%s/%s", *bundle, l.Addr(), netboot.ScriptFile))
	}
	if *repoDir != "" {
		what = append(what, fmt.Sprintf("the repository %s at http://%s%s", *repoDir, l.Addr(), netboot.RepoPath))
	}
	fmt.Fprintf(stdout, "serving %s", strings.Join(what, " and "))
	if *fleetDB != "" {
		fmt.Fprintf(stdout, "; the fleet page is http://%s%s", l.Addr(), fleet.Path)
	}
	fmt.Fprintln(stdout)
	return s.HTTPServer().Serve(l)
}

// fleetServer is the fleet passeur serve runs beside the repository in
// repoDir ("" for none): the accounts' policies read from it, and a halted
// rollout recorded in its mirror.json, so that the mirror's boxes wait.
func fleetServer(store *fleet.Store, repoDir string, logf func(string, ...any)) *fleet.Server {
	f := &fleet.Server{Store: store, Log: logf}
	if repoDir != "" {
		f.Policies = folderPolicies(repoDir)
		f.OnHalt = func(account, product string) {
			if err := mirror.Halt(repoDir, account, product); err != nil && !errors.Is(err, os.ErrNotExist) {
				logf("fleet: halting %s %s on the mirror: %v", account, product, err)
			}
		}
	}
	return f
}
