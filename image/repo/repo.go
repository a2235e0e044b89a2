// Package repo is the format of a release repository: TUF metadata (The
// Update Framework, https://theupdateframework.io) over static files any
// HTTP server, a mirror or a folder can serve, and the policy the vendor
// signs into it. Its reference is README.md beside this file.
//
// This package holds what the vendor's tools, the mirror and the box share:
// where each file lives, the policy carried in the targets' custom
// metadata, bounded and strictly parsed, and the route a box computes from
// it (route.go). The vendor's side, which signs, is repo/editor; the box's
// side, which verifies and downloads, is image/repoclient.
package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/version"
)

// The two folders of a repository, and of its URL.
const (
	MetadataDir = "metadata" // N.root.json, N.targets.json, N.account-<name>.json, N.snapshot.json, timestamp.json
	TargetsDir  = "targets"  // the targets, each as <folder>/<sha256>.<name> (consistent snapshots)
)

// IssuedField is the timestamp's signed field that says when it was
// signed: a box without a clock takes the newest it has seen as a floor of
// the time (see image/repoclient).
const IssuedField = "passeur_issued"

// Bounds of what a box reads before it trusts it: the TUF client holds
// metadata to these lengths, and the policy to these counts.
const (
	MaxRootBytes      = 512 << 10
	MaxTimestampBytes = 16 << 10
	MaxSnapshotBytes  = 1 << 20
	MaxTargetsBytes   = 4 << 20
	MaxCustomBytes    = 64 << 10
	maxTags           = 256
	maxExits          = 64
)

// Errors a caller may branch on.
var (
	ErrBadPolicy   = errors.New("malformed repository policy")
	ErrBadTagName  = errors.New("bad tag name")
	ErrUnknown     = errors.New("not in the repository")
	ErrUnknownTag  = errors.New("no such tag")
	ErrDowngrade   = errors.New("the version asked for is older than the installed one")
	ErrDeadEnd     = errors.New("the installed version is a dead end")
	ErrNoRoute     = errors.New("no route to the version asked for")
	ErrNoDefault   = errors.New("the account sets no default version")
	ErrBadAccount  = errors.New("bad account name")
	ErrUnpublished = errors.New("version not published")
)

var (
	tagRe     = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)
	accountRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// CheckTag refuses a tag name that is not [a-z][a-z0-9._-]{0,63}.
func CheckTag(tag string) error {
	if !tagRe.MatchString(tag) {
		return fmt.Errorf("%w %q: [a-z] then up to 63 of [a-z0-9._-]", ErrBadTagName, tag)
	}
	return nil
}

// CheckAccount refuses an account name that is not a short lowercase word:
// it names a role, a folder and a URL path.
func CheckAccount(name string) error {
	if !accountRe.MatchString(name) {
		return fmt.Errorf("%w %q: [a-z0-9] then up to 62 of [a-z0-9-]", ErrBadAccount, name)
	}
	return nil
}

// CheckVersion parses a version the repository lists, which is also the
// name of its folder.
func CheckVersion(s string) (version.Version, error) {
	if err := release.CheckName("version", s); err != nil {
		return version.Version{}, err
	}
	return version.Parse(s)
}

// ReleaseTarget is the target path of a release's file.
func ReleaseTarget(product, ver, file string) string { return path.Join(product, ver, file) }

// RescueDir is the targets' folder of the rescue images, one folder per
// board: what a box's running system hands its next boot to.
const RescueDir = "rescue"

// RescueFiles are a board's rescue image, as build.sh leaves it in
// out/BOARD/.
var RescueFiles = []string{"vmlinuz", "initramfs.cpio.zst"}

// MaxRescueBytes bounds each file of a rescue image.
const MaxRescueBytes = 256 << 20

// RescueTarget is the target of a file of board's rescue image.
func RescueTarget(board, file string) string { return path.Join(RescueDir, board, file) }

// ManifestTarget is the target path of a release's manifest, whose custom
// metadata holds the version's policy (Release).
func ManifestTarget(product, ver string) string {
	return ReleaseTarget(product, ver, release.ManifestFile)
}

// TagsTarget is the target path of a product's vendor tags ("stable").
func TagsTarget(product string) string { return path.Join(product, "tags.json") }

// AccountRole is the delegated targets role an account's policy is signed by.
func AccountRole(account string) string { return "account-" + account }

// AccountPattern is the only target path pattern an account's role may sign.
func AccountPattern(account string) string { return path.Join("accounts", account, "*") }

// AccountTarget is the target path of an account's policy for product.
func AccountTarget(account, product string) string {
	return path.Join("accounts", account, product+".json")
}

// ParseManifestTarget splits a manifest's target path into product and
// version; ok is false for any other path.
func ParseManifestTarget(p string) (product, ver string, ok bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[2] != release.ManifestFile {
		return "", "", false
	}
	if release.CheckName("product", parts[0]) != nil {
		return "", "", false
	}
	if _, err := CheckVersion(parts[1]); err != nil {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// Release is a version's policy, in its manifest target's custom metadata.
type Release struct {
	// Barrier: every older version must pass through this one.
	Barrier bool `json:"barrier,omitempty"`
	// BootOnce: a box must boot this version once before leaving it (its
	// first boot converts something the next version needs), so a route
	// through it ends a rescue session there.
	BootOnce bool `json:"boot_once,omitempty"`
	// DeadEnd: nothing leaves this version but for one of Exits.
	DeadEnd bool     `json:"dead_end,omitempty"`
	Exits   []string `json:"exits,omitempty"`
}

// Tags are a product's vendor tags, in its tags target's custom metadata.
type Tags struct {
	Tags map[string]string `json:"tags"`
}

// Account is an account's policy for a product, in its account target's
// custom metadata, signed by the account's delegated role.
type Account struct {
	// Default is the version a box of the account takes when it names no
	// tag.
	Default string `json:"default,omitempty"`
	// Tags are the account's test tags ("test-8.1"): a box given one takes
	// its version, whatever the default.
	Tags map[string]string `json:"tags,omitempty"`
	// Rollout, when set, phases Default in.
	Rollout *Rollout `json:"rollout,omitempty"`
	// AllowDowngrade lets a default or a tag name a version older than a
	// box's.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
}

// Rollout phases an account's new default in: a box takes it only once the
// fraction reached passes its wariness; until then it stays on Previous.
type Rollout struct {
	Previous string    `json:"previous"`
	Start    time.Time `json:"start"`
	// StartPermille is the share of boxes that take the default at
	// Start, in thousandths (an integer: TUF's canonical JSON signs no
	// floating-point number).
	StartPermille int   `json:"start_permille"`
	Seconds       int64 `json:"duration_seconds"`
	// HaltFailures is the count of failed reports at which the fleet's
	// server halts the rollout (0: never by itself).
	HaltFailures int `json:"halt_failures,omitempty"`
	// Halted: no box takes the new default any more.
	Halted bool `json:"halted,omitempty"`
}

// custom is how the policy sits in a target's custom metadata: under one
// key, beside whatever else a repository may carry there.
type custom[T any] struct {
	Passeur T `json:"passeur"`
}

// Custom is v as a target's custom metadata.
func Custom(v any) (json.RawMessage, error) {
	return json.Marshal(custom[any]{v})
}

// ParseCustom reads the policy T out of a target's custom metadata: nil or
// absent is T's zero value; anything malformed, unknown or out of bounds
// is ErrBadPolicy.
func ParseCustom[T any](raw *json.RawMessage, check func(*T) error) (T, error) {
	var c custom[T]
	if raw == nil || len(*raw) == 0 || string(*raw) == "null" {
		return c.Passeur, nil
	}
	if len(*raw) > MaxCustomBytes {
		return c.Passeur, fmt.Errorf("%w: custom metadata of %d bytes, at most %d", ErrBadPolicy, len(*raw), MaxCustomBytes)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(*raw, &probe); err != nil {
		return c.Passeur, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	inner, ok := probe["passeur"]
	if !ok {
		return c.Passeur, nil
	}
	dec := json.NewDecoder(bytes.NewReader(inner))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c.Passeur); err != nil {
		return c.Passeur, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	if check != nil {
		if err := check(&c.Passeur); err != nil {
			return c.Passeur, fmt.Errorf("%w: %w", ErrBadPolicy, err)
		}
	}
	return c.Passeur, nil
}

// Check holds a version's policy to its bounds.
func (r *Release) Check() error {
	if len(r.Exits) > maxExits {
		return fmt.Errorf("%d exits, at most %d", len(r.Exits), maxExits)
	}
	if len(r.Exits) > 0 && !r.DeadEnd {
		return errors.New("exits given to a version that is not a dead end")
	}
	for _, e := range r.Exits {
		if _, err := CheckVersion(e); err != nil {
			return fmt.Errorf("exit: %w", err)
		}
	}
	return nil
}

// Check holds vendor tags to their bounds.
func (t *Tags) Check() error { return checkTags(t.Tags) }

// Check holds an account's policy to its bounds.
func (a *Account) Check() error {
	if a.Default != "" {
		if _, err := CheckVersion(a.Default); err != nil {
			return fmt.Errorf("default: %w", err)
		}
	}
	if err := checkTags(a.Tags); err != nil {
		return err
	}
	if r := a.Rollout; r != nil {
		if a.Default == "" {
			return errors.New("a rollout without a default")
		}
		if _, err := CheckVersion(r.Previous); err != nil {
			return fmt.Errorf("rollout: previous: %w", err)
		}
		if r.StartPermille < 0 || r.StartPermille > 1000 || r.Seconds < 0 || r.HaltFailures < 0 {
			return fmt.Errorf("rollout: start %d‰ (0 to 1000), %d seconds, halt at %d failures", r.StartPermille, r.Seconds, r.HaltFailures)
		}
	}
	return nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("%d tags, at most %d", len(tags), maxTags)
	}
	for t, v := range tags {
		if err := CheckTag(t); err != nil {
			return err
		}
		if _, err := CheckVersion(v); err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return nil
}

// SortedTags lists tags by name, for stable output.
func SortedTags(tags map[string]string) []string {
	names := make([]string, 0, len(tags))
	for t := range tags {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
}
