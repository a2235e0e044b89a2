package release

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// Profile is what a rescue image knows of a product without any release
// of it: how an install is recognised and what to back up. Built into the
// image (passeur build -product), it lets a key that holds no release still
// back up the configuration and index, or recover the index; nothing is
// ever installed from a profile.
type Profile struct {
	Product     string      `json:"product"`
	Recognize   Recognize   `json:"recognize"`
	Config      []string    `json:"config"`
	Index       []string    `json:"index,omitempty"`
	DataVolumes DataVolumes `json:"data_volumes"`
}

// Profile is the manifest's product profile.
func (m *Manifest) Profile() Profile {
	return Profile{Product: m.Product, Recognize: m.Recognize, Config: m.Config, Index: m.Index, DataVolumes: m.DataVolumes}
}

// ParseProfile reads a profile strictly and checks it: a product with a
// safe name, how to recognise it, and something to back up, every path
// absolute and clean.
func ParseProfile(data []byte) (*Profile, error) {
	var p Profile
	if err := decodeStrict(data, &p, "product profile"); err != nil {
		return nil, err
	}
	if len(p.Recognize.Files) == 0 {
		return nil, fmt.Errorf("%w: product profile %q: recognize.files", ErrMissingField, p.Product)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("product profile: %w", err)
	}
	return &p, nil
}

// check verifies what a profile and a manifest share.
func (p Profile) check() error {
	missing := func(f string) error { return fmt.Errorf("%w: %s", ErrMissingField, f) }
	switch {
	case p.Product == "":
		return missing("product")
	case len(p.Config) == 0:
		return missing("config")
	case p.Recognize.VersionFile == "" || p.Recognize.VersionRegexp == "":
		return missing("recognize.version_file and recognize.version_regexp")
	}
	if err := CheckName("product", p.Product); err != nil {
		return err
	}
	if l := p.Recognize.StateLabel; l != "" {
		if err := CheckName("recognize.state_label", l); err != nil {
			return err
		}
		if len(l) > 16 {
			return fmt.Errorf("%w: recognize.state_label %q is longer than an ext4 label (16 bytes)", ErrSyntax, l)
		}
	}
	re, err := regexp.Compile(p.Recognize.VersionRegexp)
	if err != nil || re.NumSubexp() < 1 {
		return fmt.Errorf("%w: recognize.version_regexp %q needs one group around the version", ErrSyntax, p.Recognize.VersionRegexp)
	}
	if err := checkPaths("recognize", append([]string{p.Recognize.VersionFile}, p.Recognize.Files...)...); err != nil {
		return err
	}
	if err := checkPaths("config", p.Config...); err != nil {
		return err
	}
	if err := checkPaths("index", p.Index...); err != nil {
		return err
	}
	if err := checkGlobs("data_volumes.fstab_mountpoints", true, p.DataVolumes.FstabMountpoints...); err != nil {
		return err
	}
	return checkGlobs("data_volumes.label_patterns", false, p.DataVolumes.LabelPatterns...)
}

// Manifest is a manifest carrying only the profile: no version, layout or
// artifacts. It serves to recognise and back up, never to install.
func (p Profile) Manifest() *Manifest {
	return &Manifest{Format: Format, Product: p.Product, Recognize: p.Recognize, Config: p.Config, Index: p.Index, DataVolumes: p.DataVolumes}
}

// ProfileOf reads a product profile from a release spec (the release
// builder's {"manifest": …, "build": …}), a manifest or a profile, and
// renders it for the rescue image.
func ProfileOf(data []byte) (product string, profile []byte, err error) {
	var spec struct {
		Manifest json.RawMessage `json:"manifest"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", nil, fmt.Errorf("product profile: %w", err)
	}
	if spec.Manifest != nil {
		data = spec.Manifest
	}
	var m Manifest // loosely: a spec's manifest has no artifacts yet
	if err := json.Unmarshal(data, &m); err != nil {
		return "", nil, fmt.Errorf("product profile: %w", err)
	}
	out, err := json.MarshalIndent(m.Profile(), "", "  ")
	if err != nil {
		return "", nil, err
	}
	if _, err := ParseProfile(out); err != nil {
		return "", nil, err
	}
	return m.Product, append(out, '\n'), nil
}
