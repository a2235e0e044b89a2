package roles

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/passeur/passeur/initramfs/identity"
	"github.com/passeur/passeur/initramfs/inventory"
)

// WriteTable prints the roles for the operator: device, role, identity,
// size, filesystems, then the reasons indented below.
func WriteTable(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tROLE\tIDENTITY\tSIZE\tFILESYSTEMS")
	for _, a := range r.Disks {
		role := string(a.Role)
		if a.Role == System {
			role = fmt.Sprintf("system (%s %s)", a.Product, a.Version)
			if len(a.Volumes) > 0 {
				role = fmt.Sprintf("system (%s %s) with kept partitions", a.Product, a.Version)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Disk.Path, role, identity.Name(a.Disk), inventory.HumanSize(a.Disk.Size), filesystems(a.Disk))
		for _, why := range a.Reasons {
			fmt.Fprintf(tw, "  - %s\t\t\t\t\n", why)
		}
	}
	return tw.Flush()
}

func filesystems(d inventory.Disk) string {
	var fs []string
	if d.FS != nil {
		fs = append(fs, fmt.Sprintf("%s %s", d.FS.Type, d.FS.UUID))
	}
	for _, p := range d.Partitions {
		if p.FS != nil {
			fs = append(fs, fmt.Sprintf("#%d %s %s", p.Number, p.FS.Type, p.FS.UUID))
		}
	}
	if len(fs) == 0 {
		return string(d.Content)
	}
	return strings.Join(fs, ", ")
}
