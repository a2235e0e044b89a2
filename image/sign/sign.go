// Package sign signs and verifies passeur's manifests (releases, repository
// indexes) with ed25519 in the minisign format (aead.dev/minisign), so that
// the minisign CLI verifies them too: minisign -Vm manifest.json -p key.pub.
package sign

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"aead.dev/minisign"
)

// Ext is appended to a file's name to name its signature, as minisign does.
const Ext = ".minisig"

// ErrBadSignature means the data is not what the key signed: tampered, or
// signed by another key. Nothing must act on such data.
var ErrBadSignature = errors.New("signature does not verify")

// GenerateKey makes a key pair and returns both in minisign's text format.
// The private key is encrypted with password unless it is empty.
func GenerateKey(password string) (pub, priv []byte, err error) {
	pk, sk, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if pub, err = pk.MarshalText(); err != nil {
		return nil, nil, err
	}
	pub = append(pub, '\n')
	if password == "" {
		priv, err = sk.MarshalText()
	} else {
		priv, err = minisign.EncryptKey(password, sk)
	}
	return pub, priv, err
}

// LoadPrivateKey reads a private key file, decrypting it with password if
// it is encrypted.
func LoadPrivateKey(path, password string) (minisign.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("read private key: %w", err)
	}
	var sk minisign.PrivateKey
	if minisign.IsEncrypted(data) {
		sk, err = minisign.DecryptKey(password, data)
	} else {
		err = sk.UnmarshalText(data)
	}
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("private key %s: %w", path, err)
	}
	return sk, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (minisign.PublicKey, error) {
	pk, err := minisign.PublicKeyFromFile(path)
	if err != nil {
		return minisign.PublicKey{}, fmt.Errorf("public key %s: %w", path, err)
	}
	return pk, nil
}

// Sign signs data (prehashed, minisign's default) with a trusted comment.
// ed25519 is deterministic: the same data, key and comment give the same
// signature, so reproducible builds stay reproducible once signed.
func Sign(sk minisign.PrivateKey, data []byte, trustedComment string) []byte {
	r := minisign.NewReader(bytes.NewReader(data))
	r.Read(make([]byte, len(data)))
	untrusted := "signature from passeur, key " + strings.ToUpper(strconv.FormatUint(sk.ID(), 16))
	return r.SignWithComments(sk, trustedComment, untrusted)
}

// Verify checks sig over data with pk and returns the signed trusted comment.
func Verify(pk minisign.PublicKey, data, sig []byte) (string, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if s.KeyID != pk.ID() {
		return "", fmt.Errorf("%w: signed by key %X, not by %X", ErrBadSignature, s.KeyID, pk.ID())
	}
	r := minisign.NewReader(bytes.NewReader(data))
	r.Read(make([]byte, len(data)))
	ok := r.Verify(pk, sig)
	if s.Algorithm == minisign.EdDSA {
		ok = minisign.Verify(pk, data, sig)
	}
	if !ok {
		return "", ErrBadSignature
	}
	return s.TrustedComment, nil
}

// VerifyFile verifies path against path+".minisig" and returns its content,
// read once: what was verified is what the caller acts on.
func VerifyFile(pk minisign.PublicKey, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sig, err := os.ReadFile(path + Ext)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := Verify(pk, data, sig); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}
