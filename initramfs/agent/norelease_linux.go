package agent

import (
	"errors"
	"fmt"
	"os"

	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/roles"
)

// ErrNothingToInstall refuses a migration or install with no release on
// the media and no repository to fetch one from.
var ErrNothingToInstall = errors.New("no release on the install media and no repository configured (passeur.repo=): nothing to migrate or install")

// leftChoices are what a key holding no release still offers: they need
// only the product's profile, which the rescue image carries.
var leftChoices = []struct {
	mode config.Mode
	what string
}{
	{config.ModeBackup, `back up the configuration and index only (the key's entry "passeur: back up only", passeur.mode=backup)`},
	{config.ModeRecover, `rebuild the recording index, then back up (the key's entry "passeur: rebuild the recording index", passeur.mode=recover)`},
	{config.ModeShell, `debug shell (the key's entry "passeur: debug shell", passeur.mode=shell)`},
}

// profileRelease is the release of a run with no release on the media: the
// rescue image's own profile of the product, to recognise and back up only.
func (a *Agent) profileRelease() (*media.Release, error) {
	ps, err := media.LoadProfiles("/" + medialayout.ProductsDir)
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 {
		return nil, fmt.Errorf("the rescue image knows %d products: put the release of the one here in releases/ on the key", len(ps))
	}
	a.Log.Printf("no release on the install media: %s is recognised by the rescue image's own profile (backing up needs no release)", ps[0].Product)
	return &media.Release{Manifest: ps[0].Manifest(), KeyID: "the rescue image"}, nil
}

// offerLeft tells, after ErrNothingToInstall, what can still be done, and
// in an attended run asks which, and does it. Nothing has been written.
func (a *Agent) offerLeft(disks []inventory.Disk) {
	fmt.Fprintf(a.Console, "\npasseur: nothing was written. Without a release, what is left:\n")
	var choices []string
	for i, c := range leftChoices {
		fmt.Fprintf(a.Console, "  %d) %s\n", i+1, c.what)
		choices = append(choices, c.what)
	}
	fmt.Fprintf(a.Console, "or bring a release: put one on the key (passeur key -dir /media/KEY -release DIR), or name a repository (\"repo\" in %s, or passeur.repo=)\n", config.File)
	a.Events.Emit("choices", map[string]any{"reason": ErrNothingToInstall.Error(), "modes": []config.Mode{config.ModeBackup, config.ModeRecover, config.ModeShell}})
	if a.Config.Unattended {
		return
	}
	i, err := roles.NewConsole(os.Stdin, a.Console).Ask(ErrNothingToInstall, "What now?", choices)
	if err != nil {
		a.Log.Printf("%v", err)
		return
	}
	a.Config.Mode = leftChoices[i].mode
	a.Events.Emit("config", map[string]any{"mode": a.Config.Mode, "chosen": true})
	switch a.Config.Mode {
	case config.ModeBackup, config.ModeRecover:
		if err := a.backup(disks); err != nil {
			a.Fail(string(a.Config.Mode), err)
		}
	}
	// the shell is follow's
}
