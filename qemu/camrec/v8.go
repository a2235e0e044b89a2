package camrec

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/builder"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

// SpecFile is camrec 8's release spec, relative to passeur's module root:
// the spec of 8.0.0, from which SpecV8 derives the later releases.
const SpecFile = "qemu/camrec/v8/release.json"

// V8Versions are camrec 8's releases, oldest first: 8.0.0, SpecFile as it
// is; 8.1.0, whose first boot converts the index to v3; 8.2.0, whose first
// boot converts the configuration to format 3 (package v8, Steps).
var V8Versions = []string{"8.0.0", "8.1.0", "8.2.0"}

// SpecV8 returns the spec of camrec 8 version v: SpecFile itself for the
// version it names (8.0.0), else derived from it. A derived spec differs
// only where the release names its version: the manifest's version, the
// boot entry's title, the version baked into camrecd (-X main.version=)
// and the root's files that name it (etc/camrec/version,
// etc/os-release); and its migrate_from is SpecFile's (the camrec 7 boxes
// 8.0.0 migrates) widened to the camrec 8 boxes older than v:
// ">=7.14.0.2 <8 || >=8.0.0 <8.1.0" for 8.1.0. Which versions a box must
// pass through (8.0.0 → 8.1.0 → 8.2.0) is the repository's policy
// (barriers), not the manifest's: 8.2.0's camrecd runs 8.1.0's step too.
// v must be later than SpecFile's version, in the same major version.
func SpecV8(repoDir, v string) (*builder.Spec, error) {
	spec, err := builder.ReadSpec(filepath.Join(repoDir, SpecFile))
	if err != nil {
		return nil, err
	}
	base := spec.Manifest.Version
	if v == base.String() {
		return spec, nil
	}
	nv, err := version.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("camrec 8 release %q: %w", v, err)
	}
	if nv.Compare(base) <= 0 || nv.Pre != "" || nv.Parts[0] != base.Parts[0] {
		return nil, fmt.Errorf("camrec release %s: the releases derived from %s are later %d.x versions, without pre-release", v, base, base.Parts[0])
	}
	old := base.String()
	replace := func(what, s string) (string, error) {
		if !strings.Contains(s, old) {
			return "", fmt.Errorf("%s: %s %q does not name version %s", SpecFile, what, s, old)
		}
		return strings.ReplaceAll(s, old, v), nil
	}
	b := &spec.Build
	if b.ESP.Title, err = replace("build.esp.title", b.ESP.Title); err != nil {
		return nil, err
	}
	if b.Root.LDFlags, err = replace("build.root.ldflags", b.Root.LDFlags); err != nil {
		return nil, err
	}
	if !strings.Contains(b.Root.LDFlags, "-X main.version="+v) {
		return nil, fmt.Errorf("%s: build.root.ldflags %q does not set main.version", SpecFile, b.Root.LDFlags)
	}
	for path, content := range b.Root.Files {
		b.Root.Files[path] = strings.ReplaceAll(content, old, v)
	}
	if spec.Manifest.MigrateFrom == nil {
		return nil, fmt.Errorf("%s: no migrate_from to derive %s's from", SpecFile, v)
	}
	r, err := version.ParseRange(fmt.Sprintf("%s || >=%s <%s", spec.Manifest.MigrateFrom, old, v))
	if err != nil {
		return nil, err
	}
	spec.Manifest.Version, spec.Manifest.MigrateFrom = nv, &r
	return spec, nil
}

// BuildV8 builds camrec 8.0.0 with passeur's release builder into out,
// signed with the minisign key in keyFile: what the tests and the demo
// install. repoDir is passeur's module root, cache the download cache (the
// board's kernel package).
func BuildV8(repoDir, cache, out, keyFile string, log io.Writer) (*release.Manifest, error) {
	return BuildV8Version(repoDir, cache, out, keyFile, V8Versions[0], log)
}

// BuildV8Version builds camrec 8 version v (see SpecV8) as BuildV8 does.
func BuildV8Version(repoDir, cache, out, keyFile, v string, log io.Writer) (*release.Manifest, error) {
	return buildV8(repoDir, cache, out, keyFile, v, log, false)
}

// BuildV8FromScratch builds camrec 8.0.0 as BuildV8 does, its initramfs's
// packages compiled again rather than taken from Go's build cache: the
// other half of a reproducibility check.
func BuildV8FromScratch(repoDir, cache, out, keyFile string, log io.Writer) (*release.Manifest, error) {
	return buildV8(repoDir, cache, out, keyFile, V8Versions[0], log, true)
}

func buildV8(repoDir, cache, out, keyFile, v string, log io.Writer, fromScratch bool) (*release.Manifest, error) {
	spec, err := SpecV8(repoDir, v)
	if err != nil {
		return nil, err
	}
	sk, err := sign.LoadPrivateKey(keyFile, "")
	if err != nil {
		return nil, err
	}
	return builder.Run(spec, builder.Options{RepoDir: repoDir, Cache: cache, OutDir: out, Key: &sk, Log: log, FromScratch: fromScratch})
}
