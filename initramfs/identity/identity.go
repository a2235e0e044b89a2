// Package identity tells a disk apart from every other, whatever the
// kernel names it this boot: by its WWID or serial and its size, which
// survive a rewrite of its partition table; with neither, by its table's
// identifier. It is the one place where a disk's identity is computed,
// written (in a run's journal and header) and matched.
package identity

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/passeur/passeur/initramfs/inventory"
)

// Disk names the disk a job writes: what survives a rewrite of its table
// (serial or WWID, and size); with neither serial nor WWID, the table
// identifier before and after the job.
type Disk struct {
	Path     string `json:"path"` // at the time the job was made; informative
	Serial   string `json:"serial,omitempty"`
	WWID     string `json:"wwid,omitempty"`
	Size     int64  `json:"size"`
	OldTable string `json:"old_table,omitempty"`
	NewTable string `json:"new_table,omitempty"`
}

// ErrGone means the disk a journaled job was writing is not found.
var ErrGone = errors.New("the disk the migration was writing is not found")

// Of describes d as a job's target; newTable is the identifier the job
// gives its new table.
func Of(d inventory.Disk, newTable string) Disk {
	t := Disk{Path: d.Path, Serial: d.Serial, WWID: d.WWID, Size: d.Size, NewTable: newTable}
	if d.Table != nil {
		t.OldTable = d.Table.ID
	}
	return t
}

// Anonymous reports whether only its table tells the disk from another.
func (t Disk) Anonymous() bool { return t.Serial == "" && t.WWID == "" }

// Matches reports whether d is the disk t names.
func (t Disk) Matches(d inventory.Disk) bool {
	if d.Size != t.Size {
		return false
	}
	switch {
	case t.WWID != "":
		return d.WWID == t.WWID
	case t.Serial != "":
		return d.Serial == t.Serial
	}
	if d.Table == nil {
		return false
	}
	id := strings.ToLower(d.Table.ID)
	return id != "" && (id == strings.ToLower(t.OldTable) || id == strings.ToLower(t.NewTable))
}

// Find returns the one disk among disks that t names.
func (t Disk) Find(disks []inventory.Disk) (*inventory.Disk, error) {
	var found []*inventory.Disk
	for i := range disks {
		if t.Matches(disks[i]) {
			found = append(found, &disks[i])
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrGone, t)
	}
	return nil, fmt.Errorf("%w: %d disks match %s", ErrGone, len(found), t)
}

func (t Disk) String() string {
	return fmt.Sprintf("%s (%s, %s)", t.Path, id(t.WWID, t.Serial), inventory.HumanSize(t.Size))
}

func id(wwid, serial string) string {
	switch {
	case wwid != "":
		return "wwid " + wwid
	case serial != "":
		return "serial " + serial
	}
	return "no serial"
}

// Name is how a disk is told apart from others, whatever its name: its
// WWID or serial, and its partition table. A run's header names its
// machine by its system disk's Name.
func Name(d inventory.Disk) string {
	n := id(d.WWID, d.Serial)
	if d.Table != nil {
		n += fmt.Sprintf(", %s %s", d.Table.Type, d.Table.ID)
	}
	return n
}

// Names reports whether a run's header (its machine) names the disk d:
// before the run wrote its table, d's Name as the run found it; after,
// only the serial or WWID can agree (the table is the run's own, which the
// caller compared to the byte).
func Names(header string, d inventory.Disk, tableWritten bool) bool {
	n := Name(d)
	if tableWritten {
		n = Name(inventory.Disk{Serial: d.Serial, WWID: d.WWID})
	}
	return header == n || strings.HasPrefix(header, n+", ")
}

// Named reports whether the operator named d among ids, by serial or WWID
// (passeur.target, passeur.format-data).
func Named(d inventory.Disk, ids []string) bool {
	return d.Serial != "" && slices.Contains(ids, d.Serial) || d.WWID != "" && slices.Contains(ids, d.WWID)
}
