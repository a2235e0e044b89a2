package media

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/passeur/passeur/image/release"
)

// ErrNoProfile means the rescue image knows no product by itself.
var ErrNoProfile = errors.New("the rescue image holds no product profile (passeur build -product)")

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
