package release

import (
	"errors"
	"fmt"
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

// ParseProfile reads a profile strictly and checks it.
func ParseProfile(data []byte) (*Profile, error) {
	var p Profile
	if err := decodeStrict(data, &p, "product profile"); err != nil {
		return nil, err
	}
	switch {
	case p.Product == "":
		return nil, errors.New("product profile: no product")
	case len(p.Recognize.Files) == 0 || p.Recognize.VersionFile == "":
		return nil, fmt.Errorf("product profile %s: recognize needs files and a version file", p.Product)
	case len(p.Config) == 0:
		return nil, fmt.Errorf("product profile %s: nothing to back up (config)", p.Product)
	}
	return &p, nil
}

// Manifest is a manifest carrying only the profile: no version, layout or
// artifacts. It serves to recognise and back up, never to install.
func (p Profile) Manifest() *Manifest {
	return &Manifest{Format: Format, Product: p.Product, Recognize: p.Recognize, Config: p.Config, Index: p.Index, DataVolumes: p.DataVolumes}
}
