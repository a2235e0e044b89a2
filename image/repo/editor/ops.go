package editor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"aead.dev/minisign"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/sign"
	"github.com/passeur/passeur/image/version"
)

// StoredPath is where a target's bytes sit in the repository: its folder,
// then its SHA-256 and its name (TUF's consistent snapshots).
func StoredPath(dir, target string, sha256hex string) string {
	return filepath.Join(dir, repo.TargetsDir, filepath.FromSlash(path.Dir(target)), sha256hex+"."+path.Base(target))
}

// Publish checks the release in releaseDir (its manifest signed by
// trusted, its artifacts as the manifest says) and lists all its files as
// targets. A version once published is immutable: publishing it again
// with other bytes is ErrConflict, with the same bytes nothing.
func (r *Repo) Publish(releaseDir string, trusted minisign.PublicKey) (*release.Manifest, error) {
	data, err := sign.VerifyFile(trusted, filepath.Join(releaseDir, release.ManifestFile))
	if err != nil {
		return nil, err
	}
	m, err := release.Parse(data)
	if err != nil {
		return nil, err
	}
	if err := m.VerifyArtifacts(releaseDir); err != nil {
		return nil, err
	}
	ver := m.Version.String()
	if _, err := repo.CheckVersion(ver); err != nil {
		return nil, err
	}
	top := r.targets[metadata.TARGETS]
	type file struct {
		name   string
		length int64
		sum    []byte
	}
	var files []file
	for _, name := range []string{release.ManifestFile, release.ManifestFile + sign.Ext} {
		b, err := os.ReadFile(filepath.Join(releaseDir, name))
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		files = append(files, file{name, int64(len(b)), sum[:]})
	}
	for _, a := range m.Artifacts {
		sum, err := hex.DecodeString(a.StoredSHA256)
		if err != nil {
			return nil, fmt.Errorf("%s: stored sha256: %w", a.File, err)
		}
		files = append(files, file{a.File, a.StoredSize, sum})
	}
	for _, f := range files {
		t := repo.ReleaseTarget(m.Product, ver, f.name)
		if old := top.Signed.Targets[t]; old != nil && !bytes.Equal(old.Hashes["sha256"], f.sum) {
			return nil, fmt.Errorf("%w: %s", ErrConflict, t)
		}
	}
	for _, f := range files {
		t := repo.ReleaseTarget(m.Product, ver, f.name)
		if top.Signed.Targets[t] == nil {
			r.putTarget(t, filepath.Join(releaseDir, filepath.FromSlash(f.name)), f.length, f.sum)
		}
	}
	return m, r.check()
}

// putTarget signs the file src as target t in the top-level targets, and
// stores it at commit.
func (r *Repo) putTarget(t, src string, length int64, sum []byte) {
	r.targets[metadata.TARGETS].Signed.Targets[t] = &metadata.TargetFiles{Length: length, Hashes: metadata.Hashes{"sha256": sum}, Path: t}
	r.files = append(r.files, pending{src: src, sum: sum, dst: StoredPath(r.Dir, t, hex.EncodeToString(sum))})
	r.changed[metadata.TARGETS] = true
}

// PublishRescue publishes board's rescue image, the files of
// repo.RescueFiles in dir, in place of the one published before: boxes
// staging an update from their running system bring it to boot into.
func (r *Repo) PublishRescue(board, dir string) error {
	if err := release.CheckName("board", board); err != nil {
		return err
	}
	for _, name := range repo.RescueFiles {
		src := filepath.Join(dir, name)
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() || st.Size() == 0 || st.Size() > repo.MaxRescueBytes {
			return fmt.Errorf("%s: not a file of 1 byte to %d MiB", src, repo.MaxRescueBytes>>20)
		}
		sum, err := fileSum(src)
		if err != nil {
			return err
		}
		r.putTarget(repo.RescueTarget(board, name), src, st.Size(), sum)
	}
	return r.check()
}

// Catalog is what the repository publishes of product.
func (r *Repo) Catalog(product string) (*repo.Catalog, error) {
	return repo.CatalogOf(r.targets[metadata.TARGETS].Signed.Targets, CustomOf, product)
}

// Tag points a vendor tag of product at a published version.
func (r *Repo) Tag(product, tag, ver string) error {
	if err := repo.CheckTag(tag); err != nil {
		return err
	}
	c, err := r.Catalog(product)
	if err != nil {
		return err
	}
	if !c.Has(ver) {
		return fmt.Errorf("tag %s: %s %s: %w", tag, product, ver, repo.ErrUnpublished)
	}
	if c.Tags.Tags == nil {
		c.Tags.Tags = map[string]string{}
	}
	c.Tags.Tags[tag] = ver
	if err := r.setPolicy(metadata.TARGETS, repo.TagsTarget(product), c.Tags); err != nil {
		return err
	}
	return r.check()
}

// SetRelease changes a published version's policy: barrier, boot once,
// dead end and its exits.
func (r *Repo) SetRelease(product, ver string, change func(*repo.Release)) error {
	t := repo.ManifestTarget(product, ver)
	tf := r.targets[metadata.TARGETS].Signed.Targets[t]
	if tf == nil {
		return fmt.Errorf("%s %s: %w", product, ver, repo.ErrUnpublished)
	}
	pol, err := repo.ParseCustom(tf.Custom, (*repo.Release).Check)
	if err != nil {
		return err
	}
	change(&pol)
	if err := pol.Check(); err != nil {
		return fmt.Errorf("%s %s: %w", product, ver, err)
	}
	raw, err := repo.Custom(pol)
	if err != nil {
		return err
	}
	tf.Custom = &raw
	r.changed[metadata.TARGETS] = true
	return r.check()
}

// AddAccount creates an account: a delegated role, with its own key, that
// alone signs the account's policies (accounts/<name>/*).
func (r *Repo) AddAccount(name string) error {
	if err := repo.CheckAccount(name); err != nil {
		return err
	}
	role := repo.AccountRole(name)
	if r.targets[role] != nil {
		return fmt.Errorf("account %s: %w", name, ErrExists)
	}
	if _, err := os.Stat(keyPath(r.Keys, role)); err == nil {
		return fmt.Errorf("account %s: %s is already there", name, keyPath(r.Keys, role))
	}
	k, err := r.makeKey(role)
	if err != nil {
		return err
	}
	top := &r.targets[metadata.TARGETS].Signed
	if top.Delegations == nil {
		top.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	top.Delegations.Keys[k.id] = k.pub
	top.Delegations.Roles = append(top.Delegations.Roles, metadata.DelegatedRole{
		Name: role, KeyIDs: []string{k.id}, Threshold: 1, Terminating: true, Paths: []string{repo.AccountPattern(name)},
	})
	t := metadata.Targets(r.opt.Now().UTC().Add(r.opt.Targets))
	t.Signed.Version = 0
	r.targets[role] = t
	r.changed[metadata.TARGETS] = true
	r.changed[role] = true
	return r.check()
}

// Accounts lists the repository's accounts.
func (r *Repo) Accounts() []string {
	var out []string
	if d := r.targets[metadata.TARGETS].Signed.Delegations; d != nil {
		for _, role := range d.Roles {
			if len(role.Name) > len("account-") && role.Name[:len("account-")] == "account-" {
				out = append(out, role.Name[len("account-"):])
			}
		}
	}
	return out
}

// Account is an account's policy for product.
func (r *Repo) Account(name, product string) (*repo.Account, error) {
	t := r.targets[repo.AccountRole(name)]
	if t == nil {
		return nil, fmt.Errorf("account %s: %w", name, repo.ErrUnknown)
	}
	a, err := repo.ParseCustom(CustomOf(t.Signed.Targets[repo.AccountTarget(name, product)]), (*repo.Account).Check)
	return &a, err
}

// ChangeAccount changes an account's policy for product, then checks it
// against what the repository publishes.
func (r *Repo) ChangeAccount(name, product string, change func(*repo.Account) error) error {
	a, err := r.Account(name, product)
	if err != nil {
		return err
	}
	if err := change(a); err != nil {
		return err
	}
	if err := r.setPolicy(repo.AccountRole(name), repo.AccountTarget(name, product), a); err != nil {
		return err
	}
	return r.check()
}

// RolloutSpec phases a new default in.
type RolloutSpec struct {
	StartFraction float64 // 0 to 1, kept to the thousandth
	Duration      time.Duration
	HaltFailures  int
}

// SetDefault moves an account's default for product to a published
// version, at once (rollout nil) or phased in from the previous default.
func (r *Repo) SetDefault(account, product, ver string, rollout *RolloutSpec) error {
	return r.ChangeAccount(account, product, func(a *repo.Account) error {
		prev := a.Default
		a.Default = ver
		a.Rollout = nil
		if rollout != nil {
			if prev == "" || prev == ver {
				return fmt.Errorf("a rollout of %s to account %s needs a previous default to phase it in from", ver, account)
			}
			a.Rollout = &repo.Rollout{Previous: prev, Start: r.opt.Now().UTC().Truncate(time.Second), StartPermille: int(math.Round(rollout.StartFraction * 1000)),
				Seconds: int64(rollout.Duration / time.Second), HaltFailures: rollout.HaltFailures}
		}
		return nil
	})
}

// SetAccountTag points an account's test tag at a published version ("" removes it).
func (r *Repo) SetAccountTag(account, product, tag, ver string) error {
	if err := repo.CheckTag(tag); err != nil {
		return err
	}
	return r.ChangeAccount(account, product, func(a *repo.Account) error {
		if ver == "" {
			delete(a.Tags, tag)
			return nil
		}
		if a.Tags == nil {
			a.Tags = map[string]string{}
		}
		a.Tags[tag] = ver
		return nil
	})
}

// HaltRollout halts (or resumes) the rollout of an account's default.
func (r *Repo) HaltRollout(account, product string, halted bool) error {
	return r.ChangeAccount(account, product, func(a *repo.Account) error {
		if a.Rollout == nil {
			return fmt.Errorf("account %s: no rollout of %s under way", account, product)
		}
		a.Rollout.Halted = halted
		return nil
	})
}

// setPolicy writes a policy as a small target: its custom metadata is the
// policy, and so are its bytes, for a client that reads files only.
func (r *Repo) setPolicy(role, target string, policy any) error {
	raw, err := repo.Custom(policy)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(policy, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	sum := sha256.Sum256(data)
	r.files = append(r.files, pending{data: data, sum: sum[:], dst: StoredPath(r.Dir, target, hex.EncodeToString(sum[:]))})
	r.targets[role].Signed.Targets[target] = &metadata.TargetFiles{Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}, Custom: &raw, Path: target}
	r.changed[role] = true
	return nil
}

// check refuses what would break the repository: a tag, a default or a
// test tag naming a version not published, and a version a box on an
// older one could not reach through the barriers and dead ends.
func (r *Repo) check() error {
	products := map[string]bool{}
	for p := range r.targets[metadata.TARGETS].Signed.Targets {
		if prod, _, ok := repo.ParseManifestTarget(p); ok {
			products[prod] = true
		}
	}
	for product := range products {
		c, err := r.Catalog(product)
		if err != nil {
			return err
		}
		named := map[string]string{} // version -> what names it
		for t, v := range c.Tags.Tags {
			named[v] = "tag " + t
		}
		for _, acct := range r.Accounts() {
			a, err := r.Account(acct, product)
			if err != nil {
				return err
			}
			if a.Default != "" {
				named[a.Default] = "the default of account " + acct
			}
			if a.Rollout != nil {
				named[a.Rollout.Previous] = "the previous default of account " + acct
			}
			for t, v := range a.Tags {
				named[v] = fmt.Sprintf("tag %s of account %s", t, acct)
			}
		}
		for v, what := range named {
			if !c.Has(v) {
				return fmt.Errorf("%s names %s %s: %w", what, product, v, repo.ErrUnpublished)
			}
		}
		for _, from := range c.Versions {
			for v, what := range named {
				if from.Compare(version.MustParse(v)) >= 0 {
					continue
				}
				if _, err := c.Route(from, v, false); err != nil {
					return fmt.Errorf("%s (%s %s) could not be reached from %s: %w", what, product, v, from, err)
				}
			}
		}
	}
	return nil
}

// Products lists the products the repository publishes.
func (r *Repo) Products() []string {
	var out []string
	for p := range r.targets[metadata.TARGETS].Signed.Targets {
		if prod, _, ok := repo.ParseManifestTarget(p); ok && !slices.Contains(out, prod) {
			out = append(out, prod)
		}
	}
	slices.Sort(out)
	return out
}

// RotateKey replaces a role's key: a top-level role's in a new root,
// signed by the old root's keys and the new ones (the old root key must be
// at hand to rotate the root itself; any other role's key may have been
// lost), an account's in the delegation. The role's metadata is signed
// again with the new key.
func (r *Repo) RotateKey(role string) error {
	switch role {
	case metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP:
		if role == metadata.ROOT {
			old, err := r.roleKeys(metadata.ROOT)
			if err != nil {
				return fmt.Errorf("rotating the root needs its current key: %w", err)
			}
			r.rootSigners = append(r.rootSigners, old...)
		}
		k, err := r.makeKey(role)
		if err != nil {
			return err
		}
		for _, id := range slices.Clone(r.root.Signed.Roles[role].KeyIDs) {
			if err := r.root.Signed.RevokeKey(id, role); err != nil {
				return err
			}
		}
		if err := r.root.Signed.AddKey(k.pub, role); err != nil {
			return err
		}
		r.rootChanged = true
		if role == metadata.TARGETS {
			r.changed[metadata.TARGETS] = true
		}
		return nil
	}
	d := r.targets[metadata.TARGETS].Signed.Delegations
	if d == nil || r.targets[role] == nil {
		return fmt.Errorf("role %s: %w", role, repo.ErrUnknown)
	}
	for i := range d.Roles {
		if d.Roles[i].Name != role {
			continue
		}
		k, err := r.makeKey(role)
		if err != nil {
			return err
		}
		for _, id := range d.Roles[i].KeyIDs {
			delete(d.Keys, id)
		}
		d.Keys[k.id] = k.pub
		d.Roles[i].KeyIDs = []string{k.id}
		r.changed[metadata.TARGETS] = true
		r.changed[role] = true
		return nil
	}
	return fmt.Errorf("role %s: %w", role, repo.ErrUnknown)
}

// CustomOf is a target's custom metadata, nil for no target.
func CustomOf(tf *metadata.TargetFiles) *json.RawMessage {
	if tf == nil {
		return nil
	}
	return tf.Custom
}
