package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/roles"
)

// secretFile is where a system passeur installed keeps its backup secret,
// on its state partition: the key to the seal of its backups (see
// backup.Seal), never copied to the media.
const secretFile = "passeur/backup.secret"

// findSecret looks, read-only, on the ext4 filesystems of the system disk
// d for the backup secret a migration or install by passeur left there.
// A system passeur did not install has none.
func findSecret(reader *roles.MountReader, d inventory.Disk) []byte {
	for _, p := range d.Partitions {
		if p.FS == nil || p.FS.Type != "ext4" {
			continue
		}
		files, err := reader.Files(p.Path, p.FS.Type)
		if err != nil {
			continue
		}
		if b, err := fs.ReadFile(files, secretFile); err == nil && len(b) == backup.SecretSize {
			return b
		}
	}
	return nil
}

// keepSecret gives the new system mounted at root its backup secret: the
// one it already holds (this step taken up after a cut), else the old
// system's, else a new one. It returns the secret.
func keepSecret(root string, old []byte) ([]byte, error) {
	p := filepath.Join(root, secretFile)
	if b, err := os.ReadFile(p); err == nil && len(b) == backup.SecretSize {
		return b, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	secret := old
	if secret == nil {
		var err error
		if secret, err = backup.NewSecret(); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(p, secret, 0o600); err != nil {
		return nil, fmt.Errorf("write the backup secret: %w", err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, secret) {
		return nil, errors.Join(errors.New("the backup secret does not read back"), err)
	}
	return secret, nil
}
