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

// save writes a new key, refusing to overwrite one.
func (k *key) save(dir string) error {
	if _, err := os.Stat(keyPath(dir, k.role)); err == nil {
		return fmt.Errorf("%s: a key is already there", keyPath(dir, k.role))
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return atomicfile.WriteFile(keyPath(dir, k.role), data, 0o600)
}

// loadKey reads a role's key.
func loadKey(dir, role string) (*key, error) {
	data, err := os.ReadFile(keyPath(dir, role))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (role %s)", ErrNoKey, keyPath(dir, role), role)
	}
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PKCS #8 PEM private key", keyPath(dir, role))
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath(dir, role), err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key", keyPath(dir, role))
	}
	return fromPrivate(role, priv)
}

// retire moves a role's key aside once a rotation no longer needs it, so
// that a new one can take its name; it is kept, not deleted.
func retire(dir string, k *key) error {
	return os.Rename(keyPath(dir, k.role), filepath.Join(dir, fmt.Sprintf("%s.retired-%.16s.pem", k.role, k.id)))
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
