package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/passeur/passeur/image/fetch"
	"github.com/passeur/passeur/image/mirror"
)

const mirrorUsage = `usage: passeur mirror sync -upstream URL -root ROOT.json -account NAME [-tag TAG] -dir DIR [-state DIR]

The customer's local repository server (image/repo/README.md): sync
verifies the vendor's repository from its trusted root, keeps a verified
copy of every version the account's boxes may be sent to, and switches to
it atomically; passeur serve -repo DIR serves it. Run it before moving any
box (the mirror goes first), and from cron.`

func mirrorCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "sync" {
		return errors.New(mirrorUsage)
	}
	fs := flag.NewFlagSet("mirror sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "the vendor's repository URL")
	root := fs.String("root", "", "the vendor's trusted root (its metadata/1.root.json, given out of band)")
	account := fs.String("account", "", "the account whose boxes this mirror serves")
	tag := fs.String("tag", "", "an account's test tag whose version the mirror holds too")
	dir := fs.String("dir", "", "the mirror's folder, served by passeur serve -repo")
	state := fs.String("state", "", "where the mirror remembers the vendor's metadata (default: DIR.state)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *upstream == "" || *root == "" || *account == "" || *dir == "" {
		return errors.New(mirrorUsage)
	}
	rootData, err := os.ReadFile(*root)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Hour)
	defer cancel()
	res, err := mirror.Sync(ctx, mirror.Options{Upstream: *upstream, Root: rootData, Account: *account, Tag: *tag, Dir: *dir, State: *state,
		Fetch: fetch.Options{Attempts: 6, Backoff: time.Second, Log: func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mirror %s: account %s, %s default %s; holds %v; %d files downloaded (%d bytes), %d kept\n",
		*dir, res.Record.Account, res.Record.Product, res.Record.Default, res.Record.Versions, res.Files, res.Bytes, res.Kept)
	return nil
}
