package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/passeur/passeur/image/release"
)

// ProductsDir holds, in the rescue image, the profiles of the products it
// knows (passeur build -product): <product>.json each.
const ProductsDir = "etc/passeur/products"

// ErrNoProfile means the rescue image knows no product by itself.
var ErrNoProfile = errors.New("the rescue image holds no product profile (passeur build -product)")

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
	var m release.Manifest // loosely: a spec's manifest has no artifacts yet
	if err := json.Unmarshal(data, &m); err != nil {
		return "", nil, fmt.Errorf("product profile: %w", err)
	}
	out, err := json.MarshalIndent(m.Profile(), "", "  ")
	if err != nil {
		return "", nil, err
	}
	if _, err := release.ParseProfile(out); err != nil {
		return "", nil, err
	}
	return m.Product, append(out, '\n'), nil
}

// LoadProfiles reads the product profiles of the rescue image in dir.
func LoadProfiles(dir string) ([]*release.Profile, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*release.Profile
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		p, err := release.ParseProfile(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, ErrNoProfile
	}
	return out, nil
}
