// Package plan is the single, printable account of what a run will do, in
// order: what is backed up, what is written where, what is kept, what is
// never touched. It is shown before anything happens, saved with the
// backup, and every destructive step takes its orders from it only.
package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/roles"
)

// Plan is what a run will do.
type Plan struct {
	Release    string         `json:"release"`
	Mode       string         `json:"mode"` // migrate or install
	Target     Disk           `json:"target"`
	Table      string         `json:"table"` // the target's new partition table: gpt or dos
	Boot       string         `json:"boot"`  // the path the firmware takes to the new system
	Backup     Backup         `json:"backup"`
	Partitions []Partition    `json:"partitions"`
	Reattach   []roles.Volume `json:"reattach"`
	// Candidates carry the release's data labels but the old system does
	// not mount them: shown, never reattached unless the operator said so.
	Candidates []roles.Volume `json:"candidates,omitempty"`
	Untouched  []Disk         `json:"untouched"`
	Steps      []string       `json:"steps"`
}

// Disk names a disk by path and identity.
type Disk struct {
	Path     string `json:"path"`
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

// Backup is what is copied to the media before anything is written.
type Backup struct {
	From  string   `json:"from"` // device of the installed root ("state over root" for a layered install)
	Paths []string `json:"paths"`
}

// Partition is one partition of the target's new table.
type Partition struct {
	Name   string `json:"name"`
	Start  int64  `json:"start"`
	Size   int64  `json:"size"`
	Action string `json:"action"` // write, create, keep
	From   string `json:"from"`   // artifact, filesystem, or kept device
}

// Make builds the plan of a migration of sys to m, with the target's new
// partitions placed as pl.
func Make(m *release.Manifest, r *roles.Result, pl release.Placement) *Plan {
	sys := r.System()
	p := &Plan{Release: m.Product + " " + m.Version.String(), Mode: "migrate", Table: pl.Table,
		Target: Disk{sys.Disk.Path, identity.Name(sys.Disk), string(sys.Role)}, Candidates: r.Candidates}
	p.Backup = Backup{From: sys.Source(), Paths: append(append(append([]string{}, m.Config...), m.Index...), "/etc/fstab")}
	for _, e := range pl.Extents {
		pp := Partition{Name: e.Name, Start: e.Start, Size: e.Bytes}
		switch e.Role {
		case release.RoleArtifact:
			pp.Action, pp.From = "write", "artifact "+e.Artifact
		case release.RoleEmpty:
			pp.Action, pp.From = "create", "new "+e.Filesystem
		case release.RoleKeep:
			pp.Action = "keep"
			for _, part := range sys.Disk.Partitions {
				if part.Start == e.Start {
					pp.From = part.Path
				}
			}
		}
		p.Partitions = append(p.Partitions, pp)
		if g, _ := e.TypeGUID(); g == release.TypeGUIDs["esp"] {
			p.Boot = fmt.Sprintf("UEFI: the firmware loads the release's loader from %s (GPT type EFI system)", e.Name)
			if pl.Table == "dos" {
				p.Boot = fmt.Sprintf("UEFI: the firmware loads the release's loader from %s (MBR type ef, bootable); its boot entries are made to name the MBR's PARTUUIDs", e.Name)
			}
		}
	}
	for _, a := range r.Disks {
		p.Reattach = append(p.Reattach, a.Volumes...)
		if a.Role != roles.System {
			p.Untouched = append(p.Untouched, Disk{a.Disk.Path, identity.Name(a.Disk), string(a.Role)})
		}
	}
	p.Steps = []string{
		fmt.Sprintf("back up %s from %s to the install media, read back and verify", strings.Join(p.Backup.Paths, ", "), p.Backup.From),
		"verify the release's artifacts as they stream",
		fmt.Sprintf("repartition %s to the %s layout (%s table), kept partitions byte for byte in place", sys.Disk.Path, p.Release, tableName(pl.Table)),
		"write each partition image, partition table and boot-critical bytes last",
		fmt.Sprintf("reattach %d data volume(s) in the new system's fstab, read-only checked, never written", len(p.Reattach)),
		"restore the configuration and the index into the new system's state partition",
		"boot the new system and wait for its health report",
	}
	return p
}

// Write prints the plan for the operator.
func (p *Plan) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "PLAN: %s %s onto %s (%s), %s table\n", p.Mode, p.Release, p.Target.Path, p.Target.Identity, tableName(p.Table))
	fmt.Fprintf(&b, "  back up from %s: %s\n", p.Backup.From, strings.Join(p.Backup.Paths, " "))
	for _, pp := range p.Partitions {
		fmt.Fprintf(&b, "  %-6s %-8s at %9s, %9s  %s\n", pp.Action, pp.Name, inventory.HumanSize(pp.Start), inventory.HumanSize(pp.Size), pp.From)
	}
	if p.Boot != "" {
		fmt.Fprintf(&b, "  boot: %s\n", p.Boot)
	}
	for _, v := range p.Reattach {
		fmt.Fprintf(&b, "  reattach %s %s (%s %s) at %s\n", v.Device, v.Spec, v.FSType, v.UUID, v.Mountpoint)
	}
	for _, v := range p.Candidates {
		fmt.Fprintf(&b, "  not reattached: %s %s (%s %s): carries a data label, the old system does not mount it\n", v.Device, v.Spec, v.FSType, v.UUID)
	}
	for _, d := range p.Untouched {
		fmt.Fprintf(&b, "  never written: %s %s (%s)\n", d.Path, d.Role, d.Identity)
	}
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func tableName(t string) string {
	if t == "dos" {
		return "MBR"
	}
	return "GPT"
}
