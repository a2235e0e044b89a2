package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
)

// fleetCmd enrolls boxes in a fleet's database and lists them; passeur
// serve -fleet-db takes their reports and shows the fleet page.
//
//	passeur fleet enroll -db FILE -box ID -account NAME [-tag TAG]
//	passeur fleet list -db FILE
func fleetCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: passeur fleet enroll|list -db FILE ...")
	}
	fs := flag.NewFlagSet("fleet "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "the fleet's database (made if missing)")
	switch args[0] {
	case "enroll":
		box := fs.String("box", "", "the box's ID: [a-z0-9] then up to 63 of [a-z0-9._-]")
		account := fs.String("account", "", "the box's account")
		tag := fs.String("tag", "", "the box's test tag, if any")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *db == "" || *box == "" || *account == "" {
			return fmt.Errorf("fleet enroll: give -db, -box and -account")
		}
		s, err := fleet.Open(*db)
		if err != nil {
			return err
		}
		token, err := fleet.Enroll(s, *box, *account, *tag)
		if err != nil {
			return err
		}
		// The token alone on stdout, for a script to put in the box's
		// configuration (report-token); it is not stored, only its hash.
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "enrolled %s in account %s: give it the token above as its report-token; enrolling it again gives a new one\n", *box, *account)
		return nil
	case "list":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *db == "" {
			return fmt.Errorf("fleet list: give -db")
		}
		s, err := fleet.Open(*db)
		if err != nil {
			return err
		}
		boxes, err := s.Boxes()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BOX\tACCOUNT\tTAG\tRUNS\tLAST REPORT\tSEEN (server time)")
		for _, b := range boxes {
			runs, last, seen := "-", "-", "never"
			if b.Running != nil {
				runs = b.Running.Product + " " + b.Running.Version
			}
			if l := b.Last; l != nil {
				last = l.State + " " + l.Version
				if l.Step != "" {
					last += " at " + l.Step
				}
				seen = l.Received.Format(time.RFC3339)
			}
			tag := b.Tag
			if tag == "" {
				tag = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Account, tag, runs, last, seen)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown fleet command %q (known: enroll, list)", args[0])
}

// folderPolicies reads the account policies of the repository folder
// passeur serve serves, anew at each call (passeur repo and passeur mirror
// sync change it while the server runs): the timestamp names the snapshot,
// the snapshot the version of the account's role, whose targets hold the
// policy. The server trusts its own folder, which passeur repo signed or
// passeur mirror sync verified; the boxes verify it all from their root.
type folderPolicies string

func (dir folderPolicies) Account(account, product string) (*repo.Account, error) {
	if err := repo.CheckAccount(account); err != nil {
		return nil, err
	}
	md := filepath.Join(string(dir), repo.MetadataDir)
	ts, err := metadata.Timestamp().FromFile(filepath.Join(md, "timestamp.json"))
	if err != nil {
		return nil, err
	}
	sm := ts.Signed.Meta["snapshot.json"]
	if sm == nil {
		return nil, fmt.Errorf("%s: the timestamp names no snapshot", md)
	}
	snap, err := metadata.Snapshot().FromFile(filepath.Join(md, fmt.Sprintf("%d.snapshot.json", sm.Version)))
	if err != nil {
		return nil, err
	}
	role := repo.AccountRole(account)
	m := snap.Signed.Meta[role+".json"]
	if m == nil {
		return nil, fmt.Errorf("account %s: %w", account, repo.ErrUnknown)
	}
	t, err := metadata.Targets().FromFile(filepath.Join(md, fmt.Sprintf("%d.%s.json", m.Version, role)))
	if err != nil {
		return nil, err
	}
	a, err := repo.ParseCustom(editor.CustomOf(t.Signed.Targets[repo.AccountTarget(account, product)]), (*repo.Account).Check)
	return &a, err
}
