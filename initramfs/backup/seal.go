package backup

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/initramfs/media"
)

// SealFile holds a backup's seal; SecretSize is the length of the
// per-machine secret that keys it.
const (
	SealFile   = "SEAL"
	SecretSize = 32
	sealPrefix = "hmac-sha256 v1 "
)

// NewSecret returns a new per-machine secret for Seal: SecretSize random
// bytes, to be kept on the installed system (never on the media).
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Seal writes SEAL in dir, an HMAC-SHA256 keyed with secret over the
// backup's manifest and SHA256SUMS exactly as they are on the media. Call
// it after Verify passed and before MarkComplete, so that a complete
// backup is a sealed one.
func Seal(dir string, secret []byte) error {
	if len(secret) < SecretSize {
		return fmt.Errorf("backup: seal %s: secret of %d bytes, want %d", dir, len(secret), SecretSize)
	}
	r, mname, manifest, sums, err := sealed(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	line := sealPrefix + hex.EncodeToString(seal(secret, mname, manifest, sums)) + "\n"
	return media.Failure(atomicfile.WriteFile(filepath.Join(dir, SealFile), []byte(line), 0o644))
}

// CheckSeal checks the seal of the backup in dir with this machine's
// secret: ErrNotSealed when it has none, ErrBadSeal when it does not match
// the manifest and SHA256SUMS on the media.
func CheckSeal(dir string, secret []byte) error {
	r, mname, manifest, sums, err := sealed(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return checkSeal(r, secret, mname, manifest, sums)
}

// sealed opens the backup in dir and reads what its seal covers: the
// manifest (its name and bytes) and SHA256SUMS.
func sealed(dir string) (r *os.Root, mname string, manifest, sums []byte, err error) {
	if r, err = os.OpenRoot(dir); err != nil {
		return nil, "", nil, nil, media.Failure(err)
	}
	if mname, manifest, err = readManifestBytes(r); err == nil {
		sums, err = readBounded(r, SumsFile, maxSumsBytes)
	}
	if err != nil {
		r.Close()
		return nil, "", nil, nil, err
	}
	return r, mname, manifest, sums, nil
}

// checkSeal checks the seal in the backup folder r against the bytes the
// caller read, and goes on to use.
func checkSeal(r *os.Root, secret []byte, mname string, manifest, sums []byte) error {
	if len(secret) < SecretSize {
		return fmt.Errorf("backup: check seal: secret of %d bytes, want %d", len(secret), SecretSize)
	}
	data, err := readBounded(r, SealFile, 256)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s has no %s", ErrNotSealed, r.Name(), SealFile)
	}
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(strings.TrimSuffix(strings.TrimPrefix(string(data), sealPrefix), "\n"))
	if err != nil || !strings.HasPrefix(string(data), sealPrefix) {
		return fmt.Errorf("%w: %s: %s is not a seal", ErrBadSeal, r.Name(), SealFile)
	}
	if !hmac.Equal(got, seal(secret, mname, manifest, sums)) {
		return fmt.Errorf("%w: %s", ErrBadSeal, r.Name())
	}
	return nil
}

// seal is the MAC of a backup: its manifest's name (plain or encrypted)
// and the manifest and SHA256SUMS, each prefixed with its length so that
// no bytes can move from one to the other.
func seal(secret []byte, mname string, manifest, sums []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("passeur backup seal v1\x00" + mname + "\x00"))
	for _, b := range [][]byte{manifest, sums} {
		mac.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		mac.Write(b)
	}
	return mac.Sum(nil)
}
