// Package reattach says how the new system mounts the old system's data
// volumes: an fstab entry for each, naming the volume by what survives any
// disk order (its filesystem UUID, or its label when the old system used
// the label and it is unique), at the mount point the old system used or,
// for a volume found by its label only, in the release's data folder. A
// volume that cannot be named surely is left out and reported, not guessed.
// Nothing here touches a volume: checking it read-only is the caller's.
package reattach

import (
	"fmt"
	"path"
	"strings"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/roles"
)

// Skipped is a volume left out of the new fstab, with why.
type Skipped struct {
	Volume roles.Volume `json:"volume"`
	Reason string       `json:"reason"`
}

// Entries returns the new system's fstab entries for vols.
func Entries(vols []roles.Volume, m *release.Manifest) ([]fstab.Entry, []Skipped) {
	labels := map[string]int{}
	for _, v := range vols {
		if v.Label != "" {
			labels[v.Label]++
		}
	}
	var out []fstab.Entry
	var skipped []Skipped
	used := map[string]bool{}
	for _, v := range vols {
		spec := ""
		switch {
		case strings.HasPrefix(v.Spec, "LABEL=") && v.Label != "" && labels[v.Label] == 1:
			spec = "LABEL=" + v.Label
		case v.UUID != "":
			spec = "UUID=" + v.UUID
		default:
			skipped = append(skipped, Skipped{v, "no filesystem UUID or unique label to find it by"})
			continue
		}
		mp := v.Mountpoint
		if mp == "" {
			dir := dataFolder(m)
			if dir == "" || v.Label == "" {
				skipped = append(skipped, Skipped{v, "found by label only, and the release names no data folder to mount it in"})
				continue
			}
			mp = path.Join(dir, safe(v.Label))
		}
		if used[mp] {
			skipped = append(skipped, Skipped{v, fmt.Sprintf("%s is already the mount point of another volume", mp)})
			continue
		}
		used[mp] = true
		pass := 2
		if v.FSType == "xfs" || v.FSType == "btrfs" {
			pass = 0 // their fsck does nothing at boot
		}
		out = append(out, fstab.Entry{Spec: spec, Mountpoint: mp, Type: v.FSType, Options: "defaults,nofail", Pass: pass})
	}
	return out, skipped
}

// dataFolder is the folder of the release's data mount points: the
// directory of its first fstab_mountpoints glob, if that has no wildcard.
func dataFolder(m *release.Manifest) string {
	for _, g := range m.DataVolumes.FstabMountpoints {
		if d := path.Dir(g); !strings.ContainsAny(d, "*?[") && d != "/" {
			return d
		}
	}
	return ""
}

func safe(label string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r < 0x20 {
			return '_'
		}
		return r
	}, label)
}
