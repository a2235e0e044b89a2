// Package release is the format of a release: the manifest that says what a
// known-good version of a product is (its disk layout, its artifacts, how
// to recognise older installs and what to keep from them), parsed strictly
// and checked before anything acts on it. Signing is in package sign.
package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/passeur/passeur/image/version"
)

// Format is the manifest format version this code reads and writes.
const Format = 1

// Manifest describes one release of one product.
type Manifest struct {
	Format  int             `json:"format"`
	Product string          `json:"product"`
	Version version.Version `json:"version"`
	// Arch is the GOARCH the release runs on.
	Arch   string `json:"arch"`
	Layout Layout `json:"layout"`
	// Artifacts are the files the release brings, by name.
	Artifacts []Artifact `json:"artifacts"`
	// Recognize says how an older install of the product is found on a disk.
	Recognize Recognize `json:"recognize"`
	// MigrateFrom is the range of installed versions this release may
	// migrate; others are refused. Absent: fresh installs only.
	MigrateFrom *version.Range `json:"migrate_from,omitempty"`
	// Config and Index are the paths, in the old system's root, of the
	// configuration and of the recording index: backed up, then restored.
	Config []string `json:"config"`
	Index  []string `json:"index,omitempty"`
	// DataVolumes says which volumes of the old system hold its data.
	DataVolumes DataVolumes `json:"data_volumes"`
	// State names the layout partition (role empty) where passeur leaves
	// what the new system takes over on its first boot: etc/fstab with the
	// reattached data volumes, and restore/ with the backed-up paths
	// (restore/etc/…). Absent: nothing is handed over.
	State string `json:"state,omitempty"`
	// Health is the path, on the state partition, of the report the new
	// system writes at each boot: a JSON object whose boolean "ok" is its
	// verdict. passeur records it in the run's journal at the next rescue
	// boot; absent, the run ends when the new system is started.
	Health string `json:"health,omitempty"`
	// MinMediaFree is the least free space, in bytes, the install media
	// must have (backup and release included); preflight may ask for more.
	MinMediaFree int64 `json:"min_media_free"`
	// Staging, when set, is where a box's running system may stage this
	// release for the rescue to apply (passeur stage): a folder on one of
	// the old system's data volumes, which the migration keeps. It is the
	// one place of a data volume that passeur writes: the staged release,
	// and the run's journal and backup. Absent: the release is installed
	// from a key or the network only.
	Staging *Staging `json:"staging,omitempty"`
}

// Staging is where a release may be staged on a box.
type Staging struct {
	// Labels are globs of the filesystem labels of the data volumes that
	// may hold the staging area; each is one of
	// data_volumes.label_patterns, or matched by one.
	Labels []string `json:"labels"`
	// Dir is the staging area's folder at the root of such a volume: one
	// safe name.
	Dir string `json:"dir"`
}

// Artifact is a file of the release, usually a partition image.
type Artifact struct {
	Name string `json:"name"`
	// File is the artifact's path relative to the manifest.
	File string `json:"file"`
	// Compression is "zstd" or "none".
	Compression string `json:"compression"`
	// Size and SHA256 are those of the content once decompressed.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// StoredSize and StoredSHA256 are those of File as stored.
	StoredSize   int64  `json:"stored_size"`
	StoredSHA256 string `json:"stored_sha256"`
}

// Recognize lists what an install of the product has on its root
// filesystem: files that must exist, and the file holding its version.
type Recognize struct {
	Files []string `json:"files"`
	// VersionFile is read; VersionRegexp's first group is the version.
	VersionFile   string `json:"version_file"`
	VersionRegexp string `json:"version_regexp"`
	// StateLabel, when set, is the label of the filesystem that an install
	// of the product lays over its read-only root (a state partition, as
	// a release's layout makes one): on the root's own disk, it is read
	// first, then the root, as an overlay shows them. Such an install's
	// fstab, configuration and index live there. The root alone must
	// still hold Files and VersionFile.
	StateLabel string `json:"state_label,omitempty"`
}

// DataVolumes says how the old system's data volumes are recognised.
type DataVolumes struct {
	// FstabMountpoints are globs of mount points: the old /etc/fstab
	// entries mounted there (by UUID=, LABEL=, PARTUUID= or /dev/disk/by-*)
	// are data volumes.
	FstabMountpoints []string `json:"fstab_mountpoints"`
	// LabelPatterns are globs of filesystem labels of data volumes.
	LabelPatterns []string `json:"label_patterns,omitempty"`
}

// Errors a caller may branch on; Parse and Check wrap one of them.
var (
	ErrSyntax          = errors.New("manifest is not valid JSON of the release format")
	ErrMissingField    = errors.New("manifest field missing")
	ErrUnknownRole     = errors.New("unknown partition role")
	ErrUnknownArtifact = errors.New("partition names an unknown artifact")
	ErrLayout          = errors.New("invalid layout")
	ErrTooLarge        = errors.New("layout larger than disk")
)

// StatePartition is the name of the state partition, or "".
func (m *Manifest) StatePartition() string { return m.State }

// Parse reads and checks a manifest. Unknown fields are errors: a manifest
// from a newer format must not be half understood.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(data, &m, "manifest"); err != nil {
		return nil, err
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// decodeStrict decodes the one JSON object data holds into v: no unknown
// field, nothing after it.
func decodeStrict(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSyntax, what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the %s object", ErrSyntax, what)
	}
	return nil
}

// Marshal renders the manifest canonically: the same manifest always gives
// the same bytes (reproducible builds sign these bytes).
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
