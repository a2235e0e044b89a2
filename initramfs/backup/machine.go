package backup

import (
	"fmt"
	"strings"
)

// MachineID names the machine a backup was taken from, as passeur read it
// before writing anything: the old root filesystem's UUID and the system
// disk's WWID and serial (any may be empty). None of them is a secret:
// they keep one box from restoring another's backup by mistake (boxes
// sharing a host name); the seal is what an attacker cannot forge.
type MachineID struct {
	RootUUID string `json:"root_uuid,omitempty"`
	WWID     string `json:"wwid,omitempty"`
	Serial   string `json:"serial,omitempty"`
}

func (id MachineID) String() string {
	var parts []string
	for _, f := range []struct{ name, v string }{{"root", id.RootUUID}, {"wwid", id.WWID}, {"serial", id.Serial}} {
		if f.v != "" {
			parts = append(parts, f.name+" "+f.v)
		}
	}
	if len(parts) == 0 {
		return "no identity"
	}
	return strings.Join(parts, ", ")
}

// Same reports whether a backup taken on id may be restored on this, the
// machine passeur runs on. The disk is compared by WWID when both have one,
// else by serial when both have one; a disk known by an identifier on one
// side only is another disk. The root filesystem's UUID is compared when
// this has one: leave this.RootUUID empty when the root backed up is gone
// (after a migration the new system has its own), and the disk alone
// decides. Something must have compared equal: an identity with nothing
// to compare is never the same.
func (id MachineID) Same(this MachineID) bool {
	evidence := 0
	switch {
	case id.WWID != "" && this.WWID != "":
		if id.WWID != this.WWID {
			return false
		}
		evidence++
	case id.Serial != "" && this.Serial != "":
		if id.Serial != this.Serial {
			return false
		}
		evidence++
	case id.WWID != "" || id.Serial != "" || this.WWID != "" || this.Serial != "":
		return false
	}
	if this.RootUUID != "" {
		if id.RootUUID != this.RootUUID {
			return false
		}
		evidence++
	}
	return evidence > 0
}

// checkMachine refuses a backup not taken on this machine; one that
// records no machine only when allowUnrecorded.
func checkMachine(m *Manifest, this MachineID, allowUnrecorded bool) error {
	switch {
	case m.MachineID == nil && allowUnrecorded:
		return nil
	case m.MachineID == nil:
		return fmt.Errorf("%w: taken by an older passeur on %q (%s)", ErrUnknownMachine, m.Host, m.Machine)
	case !m.MachineID.Same(this):
		return fmt.Errorf("%w: taken on %s, this machine is %s", ErrOtherMachine, m.MachineID, this)
	}
	return nil
}
