// Package efivar sets and clears the UEFI variables passeur leaves the
// firmware's boot loader, through efivarfs: systemd-boot's default entry
// (the way back to the rescue after a power cut while it writes the
// system disk) and its one-shot entry (the hand-off of a running system
// whose kernel refuses kexec, or that sets it first at shutdown).
package efivar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf16"
)

// Dir is where the kernel shows the firmware's variables (efivarfs).
const Dir = "/sys/firmware/efi/efivars"

// LoaderGUID is the vendor GUID of the boot loader interface systemd-boot
// reads its variables under.
const LoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// OneShot is systemd-boot's variable naming the entry to boot once, at
// the next boot only: systemd-boot deletes it as it boots that entry.
const OneShot = "LoaderEntryOneShot-" + LoaderGUID

// attrs are those of a variable kept across power cuts, seen by boot
// services and by the running system (non-volatile, boot service access,
// runtime access).
const attrs = 0x7

// Vars is an efivarfs mount.
type Vars struct{ Dir string }

// ErrNoEFI: the kernel was not started by UEFI firmware with its runtime
// services (a BIOS box, or kexec'd without them), or efivarfs is absent.
var ErrNoEFI = errors.New("no UEFI variables (no EFI runtime, or efivarfs not mounted)")

// Available tells whether v holds the firmware's variables: efivarfs
// always shows some (the firmware's own Boot#### at least).
func (v Vars) Available() error {
	ents, err := os.ReadDir(v.Dir)
	if err != nil || len(ents) == 0 {
		return fmt.Errorf("%w: %s", ErrNoEFI, v.Dir)
	}
	return nil
}

// Encode is a string variable's bytes as efivarfs takes them: the
// attributes (little endian), then the value in UTF-16LE with its NUL.
func Encode(s string) []byte {
	out := binary.LittleEndian.AppendUint32(nil, attrs)
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return binary.LittleEndian.AppendUint16(out, 0)
}

// Decode is Encode's inverse.
func Decode(data []byte) (string, error) {
	if len(data) < 6 || len(data)%2 != 0 {
		return "", fmt.Errorf("an EFI string variable of %d bytes", len(data))
	}
	var u []uint16
	for i := 4; i+1 < len(data); i += 2 {
		c := binary.LittleEndian.Uint16(data[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

// Default is systemd-boot's variable naming the entry to boot by default,
// over loader.conf's, at every boot until it is removed (bootctl
// set-default). LoaderEntryOneShot wins over it.
const Default = "LoaderEntryDefault-" + LoaderGUID

// SetOneShot makes entry (a systemd-boot entry's file name, e.g.
// "passeur-rescue.conf") the one the boot loader starts at the next boot.
func (v Vars) SetOneShot(entry string) error { return v.SetEntry(OneShot, entry) }

// ClearOneShot removes the one-shot entry, if one is set.
func (v Vars) ClearOneShot() error { return v.Clear(OneShot) }

// OneShotEntry is the entry the next boot starts once, "" when none.
func (v Vars) OneShotEntry() (string, error) { return v.Entry(OneShot) }

// SetEntry sets the loader's variable name (OneShot, Default) to entry.
func (v Vars) SetEntry(name, entry string) error {
	if err := v.Available(); err != nil {
		return err
	}
	return v.set(name, Encode(entry))
}

// Clear removes the variable name, if it is set.
func (v Vars) Clear(name string) error {
	p := filepath.Join(v.Dir, name)
	mutable(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Entry is the entry the loader's variable name holds, "" when unset.
func (v Vars) Entry(name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(v.Dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return Decode(data)
}

// ClearIf removes each of the variables names that holds entry.
func (v Vars) ClearIf(entry string, names ...string) error {
	var errs []error
	for _, n := range names {
		if e, err := v.Entry(n); err == nil && e == entry {
			errs = append(errs, v.Clear(n))
		}
	}
	return errors.Join(errs...)
}

// set writes a variable whole, in one write as efivarfs wants it.
func (v Vars) set(name string, data []byte) error {
	p := filepath.Join(v.Dir, name)
	mutable(p) // efivarfs makes a variable's file immutable
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("set %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("set %s: %w", name, err)
	}
	return f.Close()
}
