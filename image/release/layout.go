package release

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Layout is the target partitioning of the system disk.
type Layout struct {
	// Table is the partition table type: "gpt".
	Table string `json:"table"`
	// Fallback is the table written when a GPT cannot hold the layout
	// around the partitions kept in place (a data partition to the disk's
	// last sector leaves no room for the backup GPT): "dos" (an MBR of four
	// primary partitions at most, the ESP as type 0xef, bootable), or
	// empty: such a disk is refused.
	Fallback   string      `json:"fallback,omitempty"`
	Partitions []Partition `json:"partitions"`
}

// Partition roles.
const (
	RoleArtifact = "artifact" // written from an artifact of the release
	RoleEmpty    = "empty"    // created with an empty filesystem
	RoleKeep     = "keep"     // a data partition of the old install, kept byte for byte
)

// Partition is one partition of the layout.
type Partition struct {
	// Name is the GPT partition name (PARTLABEL).
	Name string `json:"name"`
	// Type is a GPT type GUID, or the name of a Discoverable Partitions
	// Specification type (see TypeGUIDs).
	Type string `json:"type"`
	Size Size   `json:"size"`
	Role string `json:"role"`
	// Artifact names the artifact written here (role artifact).
	Artifact string `json:"artifact,omitempty"`
	// Filesystem is made on the partition (role empty): ext4, vfat, xfs.
	Filesystem string `json:"filesystem,omitempty"`
	// KeepLabel is a glob of the filesystem label or PARTLABEL that
	// identifies the old partition to keep (role keep).
	KeepLabel string `json:"keep_label,omitempty"`
	// UUID is the partition's PARTUUID, fixed by the release so that its
	// boot entry can name its root; the release builder derives one from
	// product, version and name when the spec gives none.
	UUID string `json:"uuid,omitempty"`
}

// TypeGUIDs maps the Discoverable Partitions Specification names passeur
// knows to their GPT type GUIDs.
var TypeGUIDs = map[string]string{
	"esp":           "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
	"xbootldr":      "bc13c2ff-59e6-4262-a352-b275fd6f7172",
	"root-x86-64":   "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
	"root-arm64":    "b921b045-1df0-41c3-af44-4c6f280d3fae",
	"usr-x86-64":    "8484680c-9521-48c6-9c11-b0720656f69e",
	"usr-arm64":     "b0e01050-ee5f-4390-949a-9101b17104e9",
	"var":           "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
	"srv":           "3b8f8425-20e0-4f3b-907f-1a25a76f98e8",
	"home":          "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
	"swap":          "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
	"linux-generic": "0fc63daf-8483-4772-8e79-3d69d8477de4",
}

var guidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TypeGUID returns the partition's GPT type GUID.
func (p Partition) TypeGUID() (string, error) {
	if g, ok := TypeGUIDs[p.Type]; ok {
		return g, nil
	}
	if g := strings.ToLower(p.Type); guidRe.MatchString(g) {
		return g, nil
	}
	return "", fmt.Errorf("%w: partition %q: type %q is neither a GUID nor a known name", ErrLayout, p.Name, p.Type)
}

// MBRType is the partition's type in an MBR ("dos") table, in hex as
// sfdisk prints it: EFI system, Linux swap, or Linux.
func (p Partition) MBRType() string {
	g, _ := p.TypeGUID()
	switch g {
	case TypeGUIDs["esp"]:
		return "ef"
	case TypeGUIDs["swap"]:
		return "82"
	}
	return "83"
}

func (l Layout) check(arts map[string]*Artifact) error {
	if l.Table != "gpt" {
		return fmt.Errorf("%w: table %q (only gpt)", ErrLayout, l.Table)
	}
	if l.Fallback != "" && l.Fallback != "dos" {
		return fmt.Errorf("%w: fallback table %q (only dos)", ErrLayout, l.Fallback)
	}
	if l.Fallback == "dos" && len(l.Partitions) > 4 {
		return fmt.Errorf("%w: fallback table dos holds 4 partitions, the layout has %d", ErrLayout, len(l.Partitions))
	}
	names := map[string]bool{}
	for i, p := range l.Partitions {
		where := fmt.Sprintf("partition %d (%q)", i+1, p.Name)
		if p.Name == "" {
			return fmt.Errorf("%w: %s: name", ErrMissingField, where)
		}
		if names[p.Name] {
			return fmt.Errorf("%w: %s: name used twice", ErrLayout, where)
		}
		names[p.Name] = true
		if _, err := p.TypeGUID(); err != nil {
			return err
		}
		if p.UUID != "" && !guidRe.MatchString(p.UUID) {
			return fmt.Errorf("%w: %s: uuid %q is not a lower-case GUID", ErrLayout, where, p.UUID)
		}
		if p.Size.Rest && i != len(l.Partitions)-1 {
			return fmt.Errorf("%w: %s: only the last partition may take the rest of the disk", ErrLayout, where)
		}
		if !p.Size.Rest && p.Size.Bytes <= 0 {
			return fmt.Errorf("%w: %s: size", ErrMissingField, where)
		}
		switch p.Role {
		case RoleArtifact:
			a := arts[p.Artifact]
			if a == nil {
				return fmt.Errorf("%w: %s: %q", ErrUnknownArtifact, where, p.Artifact)
			}
			if !p.Size.Rest && !p.Size.Min && a.Size > p.Size.Bytes {
				return fmt.Errorf("%w: %s: artifact %q (%d bytes) does not fit in %d bytes", ErrLayout, where, a.Name, a.Size, p.Size.Bytes)
			}
		case RoleEmpty:
			if p.Filesystem == "" {
				return fmt.Errorf("%w: %s: filesystem of an empty partition", ErrMissingField, where)
			}
		case RoleKeep:
			if p.KeepLabel == "" {
				return fmt.Errorf("%w: %s: keep_label of a kept partition", ErrMissingField, where)
			}
		default:
			return fmt.Errorf("%w %q in %s (known: artifact, empty, keep)", ErrUnknownRole, p.Role, where)
		}
	}
	return nil
}

// Size is a partition size: a fixed number of bytes ("512MiB"), a minimum
// that grows into free space ("min:1GiB"), or the rest of the disk ("rest").
type Size struct {
	Bytes int64
	Min   bool
	Rest  bool
}

var sizeRe = regexp.MustCompile(`^(\d+)(B|KiB|MiB|GiB|TiB)$`)

var units = map[string]int64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

// ParseSize parses "rest", "min:<n><unit>" or "<n><unit>", units B to TiB.
func ParseSize(s string) (Size, error) {
	if s == "rest" {
		return Size{Rest: true}, nil
	}
	var sz Size
	if rest, ok := strings.CutPrefix(s, "min:"); ok {
		sz.Min, s = true, rest
	}
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		return Size{}, fmt.Errorf("%w: size %q (want e.g. 512MiB, min:1GiB or rest)", ErrLayout, s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > (1<<62)/units[m[2]] {
		return Size{}, fmt.Errorf("%w: size %q too large", ErrLayout, s)
	}
	sz.Bytes = n * units[m[2]]
	return sz, nil
}

// String renders the size in the largest unit that divides it.
func (s Size) String() string {
	if s.Rest {
		return "rest"
	}
	out := ""
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB", "B"} {
		if s.Bytes%units[u] == 0 {
			out = strconv.FormatInt(s.Bytes/units[u], 10) + u
			break
		}
	}
	if s.Min {
		return "min:" + out
	}
	return out
}

// MarshalJSON writes the size as a string.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the size from a string.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("%w: size must be a string like \"512MiB\"", ErrLayout)
	}
	p, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = p
	return nil
}
