package release

import (
	"crypto/sha256"
	"fmt"
)

// StableUUID derives a UUID (version 4 layout) from a seed string: the same
// seed always gives the same UUID, so builds that stamp UUIDs (partitions
// of a release, fixture filesystems) stay reproducible.
func StableUUID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
