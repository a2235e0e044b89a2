package inventory

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints disks as a table a person reads on the console: one line
// per disk, then one per partition below it.
func WriteTable(w io.Writer, disks []Disk) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tBUS\tSIZE\tMODEL\tSERIAL\tCONTENT\tFSTYPE\tLABEL\tUUID\tPARTLABEL")
	for _, d := range disks {
		content := string(d.Content)
		if d.Table != nil {
			content = d.Table.Type
		}
		var fsType, label, uuid string
		if d.FS != nil {
			fsType, label, uuid = d.FS.Type, d.FS.Label, d.FS.UUID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			d.Path, d.Bus, HumanSize(d.Size), dash(d.Model), dash(d.Serial), content, dash(fsType), dash(label), dash(uuid))
		for _, p := range d.Partitions {
			fsType, label, uuid = "", "", ""
			if p.FS != nil {
				fsType, label, uuid = p.FS.Type, p.FS.Label, p.FS.UUID
			}
			fmt.Fprintf(tw, "  %s\t\t%s\t\t\t#%d\t%s\t%s\t%s\t%s\n",
				p.Path, HumanSize(p.Size), p.Number, dash(fsType), dash(label), dash(uuid), dash(p.PartLabel))
		}
		for _, e := range d.Errors {
			fmt.Fprintf(tw, "  ! %s\t\t\t\t\t\t\t\t\t\n", e)
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// HumanSize renders a byte count in binary units, e.g. "1.5 GiB".
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
