package builder

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"aead.dev/minisign"
	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/image/kernel"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/rescue"
	"github.com/passeur/passeur/image/sign"
)

// Options are the inputs of a build that are not in the spec.
type Options struct {
	RepoDir string // passeur's module root: the Go builds run there
	Cache   string // download cache (the board's kernel package)
	OutDir  string // receives manifest.json, its signature and the artifacts
	// Key signs the manifest when set.
	Key *minisign.PrivateKey
	Log io.Writer
	// FromScratch compiles the initramfs's packages again rather than
	// taking them from Go's build cache (rescue.Image.FromScratch).
	FromScratch bool
}

// Run builds the release of spec into o.OutDir and returns its manifest.
func Run(spec *Spec, o Options) (*release.Manifest, error) {
	m := spec.Manifest
	m.Layout.Partitions = append([]release.Partition(nil), m.Layout.Partitions...)
	for i := range m.Layout.Partitions {
		p := &m.Layout.Partitions[i]
		if p.UUID == "" {
			p.UUID = release.StableUUID(m.Product + "\x00" + m.Version.String() + "\x00" + p.Name)
		}
	}
	b, err := board.Load(spec.Build.Board)
	if err != nil {
		return nil, err
	}
	if b.Arch != m.Arch {
		return nil, fmt.Errorf("release arch %s, board %s is %s", m.Arch, b.Name, b.Arch)
	}
	k, err := kernel.Fetch(b.Kernel.DebianPackage, filepath.Join(o.Cache, "kernel"), o.Log)
	if err != nil {
		return nil, err
	}
	// go-diskfs and mksquashfs stamp files with SOURCE_DATE_EPOCH.
	defer os.Setenv("SOURCE_DATE_EPOCH", os.Getenv("SOURCE_DATE_EPOCH"))
	os.Setenv("SOURCE_DATE_EPOCH", strconv.FormatInt(spec.Build.SourceDateEpoch, 10))

	tmp, err := os.MkdirTemp("", "passeur-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}

	espPart, err := partition(&m, spec.Build.ESP.Partition)
	if err != nil {
		return nil, err
	}
	rootPart, err := partition(&m, spec.Build.Root.Partition)
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(tmp, "initrd.zst")
	if _, _, _, err := rescue.Assemble(rescue.Image{Board: b, Kernel: k, RepoDir: o.RepoDir, Log: o.Log, FromScratch: o.FromScratch,
		Commands: []string{spec.Build.ESP.Init}, Init: filepath.Base(spec.Build.ESP.Init)}, initrd); err != nil {
		return nil, err
	}
	espImg := filepath.Join(tmp, "esp.img")
	options := expand(strings.TrimSpace(b.Kernel.Cmdline+" "+spec.Build.ESP.Options), m.Layout.Partitions)
	if err := makeESP(espImg, espPart.Size.Bytes, spec.Build.ESP, &m, k.Vmlinuz, initrd, options, spec.Build.SourceDateEpoch); err != nil {
		return nil, err
	}
	rootImg := filepath.Join(tmp, "root.sqfs")
	if err := makeRoot(rootImg, spec.Build.Root, b.Arch, o.RepoDir, tmp, spec.Build.SourceDateEpoch); err != nil {
		return nil, err
	}

	m.Artifacts = nil
	for _, a := range []struct{ name, path string }{{espPart.Artifact, espImg}, {rootPart.Artifact, rootImg}} {
		f, err := os.Open(a.path)
		if err != nil {
			return nil, err
		}
		art, err := release.WriteArtifact(o.OutDir, a.name, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		m.Artifacts = append(m.Artifacts, art)
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("built manifest: %w", err)
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(o.OutDir, "manifest.json")
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return nil, err
	}
	if o.Key != nil {
		sig := sign.Sign(*o.Key, data, fmt.Sprintf("passeur release %s %s %s", m.Product, m.Version, m.Arch))
		if err := atomicfile.WriteFile(path+sign.Ext, sig, 0o644); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// partition finds the artifact partition called name in the layout.
func partition(m *release.Manifest, name string) (*release.Partition, error) {
	for i, p := range m.Layout.Partitions {
		if p.Name == name {
			if p.Role != release.RoleArtifact || p.Size.Rest || p.Size.Min {
				return nil, fmt.Errorf("partition %q must be an artifact partition of fixed size", name)
			}
			return &m.Layout.Partitions[i], nil
		}
	}
	return nil, fmt.Errorf("no partition %q in the layout", name)
}

// expand replaces {partuuid:NAME} in s.
func expand(s string, parts []release.Partition) string {
	for _, p := range parts {
		s = strings.ReplaceAll(s, "{partuuid:"+p.Name+"}", p.UUID)
	}
	return s
}
