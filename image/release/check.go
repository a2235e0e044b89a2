package release

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Check verifies that the manifest is complete and consistent, and that
// every name in it that becomes a path (product, version, artifacts) is a
// safe one.
func (m *Manifest) Check() error {
	missing := func(f string) error { return fmt.Errorf("%w: %s", ErrMissingField, f) }
	switch {
	case m.Format != Format:
		return fmt.Errorf("%w: format %d, this passeur reads format %d", ErrSyntax, m.Format, Format)
	case m.Product == "":
		return missing("product")
	case len(m.Version.Parts) == 0:
		return missing("version")
	case m.Arch == "":
		return missing("arch")
	case len(m.Layout.Partitions) == 0:
		return missing("layout.partitions")
	case m.MinMediaFree <= 0:
		return missing("min_media_free")
	}
	if err := m.Profile().check(); err != nil {
		return err
	}
	if err := CheckName("version", m.Version.String()); err != nil {
		return err
	}
	if err := CheckName("arch", m.Arch); err != nil {
		return err
	}
	arts := map[string]*Artifact{}
	for i := range m.Artifacts {
		a := &m.Artifacts[i]
		if err := a.check(); err != nil {
			return err
		}
		if arts[a.Name] != nil {
			return fmt.Errorf("%w: artifact %q listed twice", ErrSyntax, a.Name)
		}
		arts[a.Name] = a
	}
	if err := m.Layout.check(arts); err != nil {
		return err
	}
	if m.Health != "" && (m.State == "" || path.IsAbs(m.Health) || path.Clean(m.Health) != m.Health || strings.HasPrefix(m.Health, "..")) {
		return fmt.Errorf("%w: health %q must be a clean relative path on the state partition", ErrSyntax, m.Health)
	}
	if m.State != "" {
		ok := false
		for _, p := range m.Layout.Partitions {
			ok = ok || p.Name == m.State && p.Role == RoleEmpty
		}
		if !ok {
			return fmt.Errorf("%w: state %q is not an empty partition of the layout", ErrLayout, m.State)
		}
	}
	return m.Staging.check(m.DataVolumes)
}

// check refuses a staging area that is not a safe folder on volumes the
// release counts as data volumes: those the migration keeps.
func (s *Staging) check(data DataVolumes) error {
	if s == nil {
		return nil
	}
	if err := CheckName("staging.dir", s.Dir); err != nil {
		return err
	}
	if len(s.Labels) == 0 {
		return fmt.Errorf("%w: staging.labels", ErrMissingField)
	}
	if err := checkGlobs("staging.labels", false, s.Labels...); err != nil {
		return err
	}
	for _, l := range s.Labels {
		ok := false
		for _, p := range data.LabelPatterns {
			m, _ := path.Match(p, l)
			ok = ok || p == l || m
		}
		if !ok {
			return fmt.Errorf("%w: staging label %q is not a data volume's (data_volumes.label_patterns %q)", ErrSyntax, l, data.LabelPatterns)
		}
	}
	return nil
}

// StagingVolume reports whether a filesystem labelled label may hold the
// release's staging area.
func (m *Manifest) StagingVolume(label string) bool {
	if m.Staging == nil || label == "" {
		return false
	}
	for _, g := range m.Staging.Labels {
		if ok, _ := path.Match(g, label); ok {
			return true
		}
	}
	return false
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (a *Artifact) check() error {
	where := "artifact " + a.Name
	switch {
	case a.Name == "":
		return fmt.Errorf("%w: artifact name", ErrMissingField)
	case a.File == "" || path.IsAbs(a.File) || strings.HasPrefix(path.Clean(a.File), ".."):
		return fmt.Errorf("%w: %s: file %q must be a path inside the release", ErrSyntax, where, a.File)
	case a.Compression != "zstd" && a.Compression != "none":
		return fmt.Errorf("%w: %s: compression %q (known: zstd, none)", ErrSyntax, where, a.Compression)
	case a.Size <= 0 || a.StoredSize <= 0:
		return fmt.Errorf("%w: %s: size and stored_size", ErrMissingField, where)
	case !hexSHA256.MatchString(a.SHA256) || !hexSHA256.MatchString(a.StoredSHA256):
		return fmt.Errorf("%w: %s: sha256 and stored_sha256 must be 64 lower-case hex digits", ErrSyntax, where)
	case a.Compression == "none" && (a.Size != a.StoredSize || a.SHA256 != a.StoredSHA256):
		return fmt.Errorf("%w: %s: uncompressed, yet stored size or hash differ", ErrSyntax, where)
	}
	if err := CheckName("artifact", a.Name); err != nil {
		return err
	}
	return checkFile(where, a.File)
}
