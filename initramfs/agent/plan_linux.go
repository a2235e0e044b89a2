package agent

import (
	"fmt"
	"os"

	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/plan"
	"github.com/passeur/passeur/initramfs/preflight"
	"github.com/passeur/passeur/initramfs/roles"
)

type releaseEvent struct {
	Dir     string `json:"dir"`
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

type rolesEvent struct {
	Release string             `json:"release"`
	Disks   []roles.Assignment `json:"disks"`
}

// plan finds the install media and its releases, and gives every disk its
// role, reading everything read-only: it writes to no disk.
func (a *Agent) plan(disks []inventory.Disk) error {
	reader := &roles.MountReader{Dir: "/run/passeur/mnt"}
	defer func() {
		if err := reader.Close(); err != nil {
			a.Fail("plan", err)
		}
	}()
	trusted, err := media.LoadTrusted("/" + media.TrustedDir)
	if err != nil {
		return err
	}
	files, err := roles.FindMedia(disks, reader)
	if err != nil {
		return err
	}
	rels, refused := media.Releases(files, trusted)
	for _, r := range refused {
		a.Log.Printf("release %s refused: %v", r.Dir, r.Err)
		a.Events.Emit("release", releaseEvent{Dir: r.Dir, Error: r.Err.Error()})
	}
	for _, r := range rels {
		a.Events.Emit("release", releaseEvent{Dir: r.Dir, Product: r.Manifest.Product, Version: r.Manifest.Version.String()})
	}
	rel, err := media.Newest(rels, "")
	if err != nil {
		return err
	}
	a.Log.Printf("release %s %s from %s", rel.Manifest.Product, rel.Manifest.Version, rel.Dir)
	m := rel.Manifest
	var ask roles.Asker = roles.Unattended{}
	if !a.Config.Unattended {
		ask = roles.NewConsole(os.Stdin, a.Console)
	}
	res, err := roles.Assign(disks, m, reader, ask)
	if err != nil {
		return err
	}
	roles.WriteTable(a.Console, res)
	a.Events.Emit("roles", rolesEvent{Release: m.Product + " " + m.Version.String(), Disks: res.Disks})
	sys := res.System()
	if sys == nil {
		a.Log.Printf("no installed %s found: nothing to migrate (a fresh install is passeur.mode=install)", m.Product)
		return nil
	}

	env := preflight.MountEnv{Reader: reader, FSType: func(dev string) string {
		if fs := inventory.FSOf(disks, dev); fs != nil {
			return fs.Type
		}
		return ""
	}}
	rep := preflight.Run(preflight.Input{Release: m, SignedBy: "key " + rel.KeyID, Roles: res}, env)
	for _, c := range rep.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(a.Console, "  [%s] %-32s %s\n", mark, c.Name, c.Detail)
	}
	a.Events.Emit("preflight", rep)
	if err := rep.Err(); err != nil {
		return err
	}
	ext, err := preflight.Layout(m, sys)
	if err != nil {
		return err
	}
	p := plan.Make(m, res, ext)
	p.Write(a.Console)
	return a.Events.Emit("plan", p)
}
