package editor

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/passeur/passeur/image/atomicfile"
)

// ErrNoKey is a signing key missing from the keys folder.
var ErrNoKey = errors.New("signing key missing")

// A key is one role's ed25519 signing key, kept as PKCS #8 PEM in the keys
// folder as <role>.pem (readable by openssl), mode 0600.
type key struct {
	role string
	priv ed25519.PrivateKey
	pub  *metadata.Key
	id   string
}

func keyPath(dir, role string) string { return filepath.Join(dir, role+".pem") }

// genKey makes a role's key in memory: Commit writes it.
func genKey(role string) (*key, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return fromPrivate(role, priv)
}

// newSuffix marks a key made by a change not yet committed: Commit renames
// it into place after the timestamp, so that a commit that fails leaves the
// keys folder matching the repository on disk (loadKey takes it up if a
// crash came between the two).
const newSuffix = ".new"

// save writes a new key beside the role's current one.
func (k *key) save(dir string) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return atomicfile.WriteFile(keyPath(dir, k.role)+newSuffix, data, 0o600)
}

// install puts a saved new key in its role's place.
func (k *key) install(dir string) error {
	return atomicfile.Rename(keyPath(dir, k.role)+newSuffix, keyPath(dir, k.role))
}

// loadKey reads a role's key.
func loadKey(dir, role string) (*key, error) { return loadKeyFile(keyPath(dir, role), role) }

// loadKeyFile reads a role's key from p.
func loadKeyFile(p, role string) (*key, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (role %s)", ErrNoKey, p, role)
	}
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PKCS #8 PEM private key", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key", p)
	}
	return fromPrivate(role, priv)
}

// retire copies a role's key aside once a rotation no longer needs it; it
// is kept, not deleted, and the new key then takes its name.
func retire(dir string, k *key) error {
	data, err := os.ReadFile(keyPath(dir, k.role))
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, fmt.Sprintf("%s.retired-%.16s.pem", k.role, k.id)), data, 0o600)
}

func fromPrivate(role string, priv ed25519.PrivateKey) (*key, error) {
	pub, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	id, err := pub.ID()
	if err != nil {
		return nil, err
	}
	return &key{role: role, priv: priv, pub: pub, id: id}, nil
}

func (k *key) signer() (signature.Signer, error) {
	return signature.LoadSigner(k.priv, crypto.Hash(0))
}
