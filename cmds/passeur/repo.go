package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/sign"
)

const repoUsage = `usage: passeur repo COMMAND -repo DIR -keys DIR [flags] ARGS

The vendor's repository (image/repo/README.md). Each command checks its
change against the whole repository, refuses what would break it (nothing
written), then signs and writes.

  init                                       create the repository and its keys
  publish  -trust K.pub [-tag T,...] RELEASE_DIR...   verify releases and publish them
  rescue   BOARD DIR                         publish the board's rescue image (DIR/vmlinuz,
                                             DIR/initramfs.cpio.zst: out/BOARD after ./build.sh),
                                             which passeur stage brings to boxes of that board
  tag      PRODUCT TAG VERSION               point a vendor tag ("stable") at a version
  account  NAME                              create an account (its own delegated key)
  test-tag ACCOUNT PRODUCT TAG VERSION|-     point (or remove) an account's test tag
  default  [-rollout-start F -rollout-hours H -halt-failures N] ACCOUNT PRODUCT VERSION
                                             move an account's default, at once or phased in
  halt | resume  ACCOUNT PRODUCT             halt or resume the rollout of the default
  barrier  [-off] PRODUCT VERSION            every older version must pass through VERSION
  dead-end [-off] [-exits V,...] PRODUCT VERSION   nothing leaves VERSION but for its exits
  boot-once [-off] PRODUCT VERSION           a box boots VERSION before leaving it
  rotate   ROLE                              new key for root, targets, snapshot, timestamp or account-NAME
  refresh                                    sign the snapshot and timestamp again (run it from cron,
                                             more often than -timestamp-days)
  show                                       what the repository publishes, and its policy`

func repoCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(repoUsage)
	}
	cmd := args[0]
	fs := flag.NewFlagSet("repo "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("repo", "", "the repository folder")
	keys := fs.String("keys", "", "the folder of the repository's signing keys (keep it offline)")
	trust := fs.String("trust", "", "publish: the minisign public key the releases are signed with")
	tags := fs.String("tag", "", "publish: comma-separated vendor tags to point at the (last) release")
	off := fs.Bool("off", false, "barrier, dead-end, boot-once: clear it")
	exits := fs.String("exits", "", "dead-end: comma-separated versions a box may leave it for")
	start := fs.Float64("rollout-start", 0, "default: phase the new default in, from this fraction of the boxes (0 to 1)")
	hours := fs.Float64("rollout-hours", 0, "default: hours the rollout takes to reach every box")
	halt := fs.Int("halt-failures", 0, "default: failed reports at which the fleet's server halts the rollout")
	tsDays := fs.Int("timestamp-days", 7, "days a timestamp is valid")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" || (*keys == "" && cmd != "show") {
		return fmt.Errorf("repo %s: -repo and -keys are required\n%s", cmd, repoUsage)
	}
	opt := editor.Options{Timestamp: time.Duration(*tsDays) * 24 * time.Hour}
	want := func(n int, what string) error {
		if fs.NArg() != n {
			return fmt.Errorf("repo %s: give %s", cmd, what)
		}
		return nil
	}
	if cmd == "init" {
		r, err := editor.Init(*dir, *keys, opt)
		if err != nil {
			return err
		}
		if err := r.Commit(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "repository %s created, keys in %s\ntrusted root: %s (build the rescue image with -repo-root)\n",
			*dir, *keys, filepath.Join(*dir, repo.MetadataDir, "1.root.json"))
		return nil
	}
	r, err := editor.Open(*dir, *keys, opt)
	if err != nil {
		return err
	}
	var done string
	switch cmd {
	case "show":
		return showRepo(r, stdout)
	case "publish":
		if fs.NArg() == 0 || *trust == "" {
			return errors.New("repo publish: give -trust K.pub and release folders")
		}
		pk, err := sign.LoadPublicKey(*trust)
		if err != nil {
			return err
		}
		var last string
		for _, d := range fs.Args() {
			m, err := r.Publish(d, pk)
			if err != nil {
				return fmt.Errorf("%s: %w", d, err)
			}
			last = m.Version.String()
			done += fmt.Sprintf("published %s %s\n", m.Product, m.Version)
			for _, t := range splitList(*tags) {
				if err := r.Tag(m.Product, t, last); err != nil {
					return err
				}
			}
		}
	case "rescue":
		if err := want(2, "BOARD DIR"); err != nil {
			return err
		}
		err = r.PublishRescue(fs.Arg(0), fs.Arg(1))
		done = fmt.Sprintf("published the rescue image of %s from %s\n", fs.Arg(0), fs.Arg(1))
	case "tag":
		if err := want(3, "PRODUCT TAG VERSION"); err != nil {
			return err
		}
		err = r.Tag(fs.Arg(0), fs.Arg(1), fs.Arg(2))
		done = fmt.Sprintf("%s: tag %s now names %s\n", fs.Arg(0), fs.Arg(1), fs.Arg(2))
	case "account":
		if err := want(1, "NAME"); err != nil {
			return err
		}
		err = r.AddAccount(fs.Arg(0))
		done = fmt.Sprintf("account %s created; its key: %s\n", fs.Arg(0), filepath.Join(*keys, repo.AccountRole(fs.Arg(0))+".pem"))
	case "test-tag":
		if err := want(4, "ACCOUNT PRODUCT TAG VERSION|-"); err != nil {
			return err
		}
		v := fs.Arg(3)
		if v == "-" {
			v = ""
		}
		err = r.SetAccountTag(fs.Arg(0), fs.Arg(1), fs.Arg(2), v)
		done = fmt.Sprintf("account %s, %s: tag %s now names %q\n", fs.Arg(0), fs.Arg(1), fs.Arg(2), v)
	case "default":
		if err := want(3, "ACCOUNT PRODUCT VERSION"); err != nil {
			return err
		}
		var ro *editor.RolloutSpec
		if *start > 0 || *hours > 0 {
			ro = &editor.RolloutSpec{StartFraction: *start, Duration: time.Duration(*hours * float64(time.Hour)), HaltFailures: *halt}
		}
		err = r.SetDefault(fs.Arg(0), fs.Arg(1), fs.Arg(2), ro)
		done = fmt.Sprintf("account %s, %s: default now %s\n", fs.Arg(0), fs.Arg(1), fs.Arg(2))
	case "halt", "resume":
		if err := want(2, "ACCOUNT PRODUCT"); err != nil {
			return err
		}
		err = r.HaltRollout(fs.Arg(0), fs.Arg(1), cmd == "halt")
		done = fmt.Sprintf("account %s, %s: rollout %sd\n", fs.Arg(0), fs.Arg(1), cmd)
	case "barrier", "dead-end", "boot-once":
		if err := want(2, "PRODUCT VERSION"); err != nil {
			return err
		}
		err = r.SetRelease(fs.Arg(0), fs.Arg(1), func(p *repo.Release) {
			switch cmd {
			case "barrier":
				p.Barrier = !*off
			case "boot-once":
				p.BootOnce = !*off
			case "dead-end":
				p.DeadEnd, p.Exits = !*off, nil
				if !*off {
					p.Exits = splitList(*exits)
				}
			}
		})
		done = fmt.Sprintf("%s %s: %s %s\n", fs.Arg(0), fs.Arg(1), cmd, map[bool]string{true: "cleared", false: "set"}[*off])
	case "rotate":
		if err := want(1, "ROLE"); err != nil {
			return err
		}
		err = r.RotateKey(fs.Arg(0))
		done = fmt.Sprintf("role %s: new key; the old one kept aside in %s\n", fs.Arg(0), *keys)
	case "refresh":
		done = "snapshot and timestamp signed again\n"
	default:
		return fmt.Errorf("repo: unknown command %q\n%s", cmd, repoUsage)
	}
	if err != nil {
		return err
	}
	if err := r.Commit(); err != nil {
		return err
	}
	fmt.Fprint(stdout, done)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// showRepo prints what the repository publishes and its policy.
func showRepo(r *editor.Repo, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range r.Products() {
		c, err := r.Catalog(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\n", p)
		for _, v := range c.Versions {
			pol := c.Policy[v.String()]
			var notes []string
			if pol.Barrier {
				notes = append(notes, "barrier")
			}
			if pol.BootOnce {
				notes = append(notes, "boot once")
			}
			if pol.DeadEnd {
				notes = append(notes, fmt.Sprintf("dead end (exits: %s)", strings.Join(pol.Exits, ", ")))
			}
			for _, t := range repo.SortedTags(c.Tags.Tags) {
				if c.Tags.Tags[t] == v.String() {
					notes = append(notes, "tag "+t)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\n", v, strings.Join(notes, ", "))
		}
		for _, acct := range r.Accounts() {
			a, err := r.Account(acct, p)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("  account %s\tdefault %s", acct, a.Default)
			if ro := a.Rollout; ro != nil {
				state := fmt.Sprintf("at %.0f%%", 100*ro.Fraction(time.Now()))
				if ro.Halted {
					state = "halted"
				}
				line += fmt.Sprintf(" (rollout from %s, %s)", ro.Previous, state)
			}
			for _, t := range repo.SortedTags(a.Tags) {
				line += fmt.Sprintf(", tag %s: %s", t, a.Tags[t])
			}
			fmt.Fprintln(tw, line)
		}
	}
	return tw.Flush()
}
