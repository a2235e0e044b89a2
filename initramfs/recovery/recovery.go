// Package recovery rebuilds a product's recording index from its
// recordings when the index is lost or fails its own check. What an index
// is, and how recordings are named, belongs to each product: a product
// registers its Indexer under its name (the release manifest's product),
// and passeur asks for it by that name. The data volumes are only ever read.
package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors an Indexer's Check wraps, and For's.
var (
	ErrMissing   = errors.New("recording index missing")
	ErrCorrupt   = errors.New("recording index fails its consistency check")
	ErrNoIndexer = errors.New("no index recovery registered for this product")
)

// CorruptError is an Indexer's ErrCorrupt naming the file of the index
// that failed its check, so that it is kept in a backup as damaged and
// not restored beside the rebuilt one.
type CorruptError struct {
	Path string // absolute, in the installed system's files
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: %s: %v", ErrCorrupt, e.Path, e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Volume is a data volume of the installed system, mounted read-only.
type Volume struct {
	Device     string
	Mountpoint string // where the installed system mounts it
	FS         fs.FS
}

// File is a file of the rebuilt index, to be put at Path in the system.
type File struct {
	Path string
	Data []byte
	Mode uint32
}

// Rejected is a file of a data volume that is not a readable recording.
type Rejected struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Report is what a rebuild found.
type Report struct {
	Product  string     `json:"product"`
	Volumes  int        `json:"volumes"`
	Cameras  int        `json:"cameras"`
	Segments int        `json:"segments"`
	Bytes    int64      `json:"bytes"`
	First    time.Time  `json:"first,omitzero"`
	Last     time.Time  `json:"last,omitzero"`
	Rejected []Rejected `json:"rejected,omitempty"`
	// Existing says how the rebuilt index compares with the one the
	// system had: "equal", "differs", "missing" or "corrupt: …".
	Existing string  `json:"existing,omitempty"`
	Seconds  float64 `json:"seconds"`
}

// Indexer knows one product's recording index.
type Indexer interface {
	// Check reads the index from the installed system's files; the error
	// wraps ErrMissing or ErrCorrupt (a *CorruptError where it can name
	// the file).
	Check(root fs.FS) error
	// Rebuild scans the volumes' recordings and returns the index files.
	Rebuild(vols []Volume) ([]File, Report, error)
}

var (
	mu       sync.Mutex
	indexers = map[string]Indexer{}
)

// Register makes ix the index recovery of product.
func Register(product string, ix Indexer) {
	mu.Lock()
	defer mu.Unlock()
	indexers[product] = ix
}

// For returns the index recovery of product.
func For(product string) (Indexer, error) {
	mu.Lock()
	defer mu.Unlock()
	if ix, ok := indexers[product]; ok {
		return ix, nil
	}
	var known []string
	for p := range indexers {
		known = append(known, p)
	}
	sort.Strings(known)
	return nil, fmt.Errorf("%w: %q (registered: %s)", ErrNoIndexer, product, strings.Join(known, ", "))
}
