package efivar

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The bytes of LoaderEntryOneShot as systemd's bootctl set-oneshot writes
// them for "passeur-rescue.conf": attributes 0x7, UTF-16LE, NUL.
func TestEncode(t *testing.T) {
	want := []byte{7, 0, 0, 0}
	for _, c := range "passeur-rescue.conf" {
		want = append(want, byte(c), 0)
	}
	want = append(want, 0, 0)
	if got := Encode("passeur-rescue.conf"); !bytes.Equal(got, want) {
		t.Errorf("Encode = % x\nwant     % x", got, want)
	}
	if s, err := Decode(want); err != nil || s != "passeur-rescue.conf" {
		t.Errorf("Decode = %q %v", s, err)
	}
	for _, bad := range [][]byte{nil, {7, 0, 0, 0}, {7, 0, 0, 0, 'a'}} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(% x) took it", bad)
		}
	}
}

func TestOneShot(t *testing.T) {
	v := Vars{Dir: t.TempDir()}
	if err := v.SetOneShot("x.conf"); !errors.Is(err, ErrNoEFI) {
		t.Errorf("no variables at all: %v, want ErrNoEFI", err)
	}
	os.WriteFile(filepath.Join(v.Dir, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0, 1, 0}, 0o644)
	if e, err := v.OneShotEntry(); err != nil || e != "" {
		t.Errorf("none set: %q %v", e, err)
	}
	for _, e := range []string{"passeur-rescue.conf", "again.conf"} {
		if err := v.SetOneShot(e); err != nil {
			t.Fatal(err)
		}
		if got, err := v.OneShotEntry(); err != nil || got != e {
			t.Errorf("set %q, read %q %v", e, got, err)
		}
	}
	if err := v.ClearOneShot(); err != nil {
		t.Fatal(err)
	}
	if e, _ := v.OneShotEntry(); e != "" {
		t.Errorf("cleared, still %q", e)
	}
	if err := v.ClearOneShot(); err != nil {
		t.Errorf("cleared twice: %v", err)
	}
}
