// Package builder builds a release from a spec: the product's manifest
// (layout, recognition rules, what to keep) and how to make its artifacts
// (an ESP with systemd-boot, the board's kernel and a Go initrd; a squashfs
// root of Go commands and files). Same spec, same sources, same kernel:
// same bytes, signature included.
package builder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/passeur/passeur/image/release"
)

// Spec is what a release is built from.
type Spec struct {
	// Manifest is the release's manifest but for its artifacts, which the
	// build makes and describes.
	Manifest release.Manifest `json:"manifest"`
	Build    Build            `json:"build"`
}

// Build says how the artifacts are made.
type Build struct {
	Board string `json:"board"`
	// SourceDateEpoch is the time stamped on every file of every image.
	SourceDateEpoch int64 `json:"source_date_epoch"`
	ESP             ESP   `json:"esp"`
	Root            Root  `json:"root"`
}

// ESP is the EFI system partition: systemd-boot as the removable-media
// loader, the board's kernel, an initrd whose /init is Init, and one boot
// entry.
type ESP struct {
	Partition string `json:"partition"` // layout partition (role artifact) it goes to
	Loader    string `json:"loader"`    // host path of systemd-boot's EFI binary
	Title     string `json:"title"`
	Init      string `json:"init"` // Go package of the initrd's /init
	// Options are added to the board's kernel command line in the boot
	// entry; {partuuid:NAME} is replaced by the PARTUUID of partition NAME.
	Options string `json:"options"`
}

// Root is the root filesystem, a read-only squashfs.
type Root struct {
	Partition string            `json:"partition"`
	Commands  map[string]string `json:"commands"` // path in the root -> Go package
	LDFlags   string            `json:"ldflags,omitempty"`
	Files     map[string]string `json:"files,omitempty"` // path in the root -> content
	Dirs      []string          `json:"dirs,omitempty"`
}

// ReadSpec reads a spec file; unknown fields are errors.
func ReadSpec(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("release spec %s: %w", path, err)
	}
	return &s, nil
}
