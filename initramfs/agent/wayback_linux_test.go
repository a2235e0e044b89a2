package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/image/medialayout"
	"github.com/passeur/passeur/image/ownimage"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/u-root/u-root/pkg/cpio"
)

// TestOwnInitramfs: the rescue writes its initramfs again from what it
// runs, as its build sealed it, or not at all when a file differs.
func TestOwnInitramfs(t *testing.T) {
	var built, sealed bytes.Buffer
	w := cpio.Newc.Writer(&built)
	big := strings.Repeat("the busybox ", 1000)
	cpio.WriteRecords(w, []cpio.Record{
		cpio.Directory("bbin", 0o755), cpio.Directory("etc", 0o755), cpio.Directory("etc/passeur", 0o755),
		cpio.StaticFile("bbin/bb", big, 0o755), cpio.Symlink("init", "bbin/bb"),
	})
	cpio.WriteTrailer(w)
	if err := ownimage.Seal(bytes.NewReader(built.Bytes()), &sealed); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bbin"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/passeur"), 0o755)
	os.WriteFile(filepath.Join(root, "bbin/bb"), []byte(big), 0o755)
	recs, _ := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(sealed.Bytes())))
	manifest := recs[len(recs)-1]
	data, _ := io.ReadAll(io.NewSectionReader(manifest, 0, int64(manifest.FileSize)))
	os.WriteFile(filepath.Join(root, medialayout.InitramfsManifest), data, 0o644)

	a := &Agent{imageRoot: root}
	got, err := a.ownInitramfs()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if len(again) != len(recs) {
		t.Errorf("%d records written again, %d sealed", len(again), len(recs))
	}
	os.WriteFile(filepath.Join(root, "bbin/bb"), []byte(strings.ToUpper(big)), 0o755)
	if _, err := a.ownInitramfs(); err == nil {
		t.Error("an altered busybox was written again")
	}
}

func TestEntryCmdline(t *testing.T) {
	got := entryCmdline("console=ttyS0 passeur.mode=migrate passeur.report=http://m/ passeur.box=b \"passeur.report-token=s3cret\" passeur.staged=x acpi=\"a b\" passeur.wayback=yes\n")
	if want := `console=ttyS0 passeur.mode=migrate passeur.staged=x "acpi=a b" passeur.wayback=yes`; got != want {
		t.Errorf("entryCmdline = %q, want %q", got, want)
	}
}

// TestLayWayBack: the rescue laid on the ESP is systemd-boot's default
// entry until it is lifted, the box's own default then put back; a
// variable that cannot be set leaves nothing on the ESP; a variable that
// cannot be cleared does not keep the rescue on it.
func TestLayWayBack(t *testing.T) {
	esp, vars := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(esp, "loader/entries"), 0o755)
	os.MkdirAll(filepath.Join(esp, "EFI/BOOT"), 0o755)
	os.WriteFile(filepath.Join(esp, "EFI/BOOT/BOOTX64.EFI"), []byte("MZ #### LoaderInfo: systemd-boot 252 ####"), 0o644)
	os.WriteFile(filepath.Join(vars, "BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"), []byte{7, 0, 0, 0, 1, 0}, 0o644)
	v := efivar.Vars{Dir: vars}
	gone := func(what string) {
		t.Helper()
		ents, _ := os.ReadDir(filepath.Join(esp, "loader/entries"))
		if _, err := os.Stat(filepath.Join(esp, newsys.RescueFolder)); len(ents) != 0 || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: entries %v, %s: %v", what, ents, newsys.RescueFolder, err)
		}
	}
	for _, own := range []string{"", "camrec.conf"} {
		v.Clear(efivar.Default)
		if own != "" {
			v.SetEntry(efivar.Default, own)
		}
		previous, err := layWayBack(v, esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0")
		if err != nil || previous != own {
			t.Fatalf("laid: previous %q, %v; want %q", previous, err, own)
		}
		if e, _ := v.Entry(efivar.Default); e != newsys.RescueEntry {
			t.Errorf("default entry %q", e)
		}
		v.SetOneShot(newsys.RescueEntry)
		if err := liftWayBack(v, esp, previous); err != nil {
			t.Fatal(err)
		}
		d, _ := v.Entry(efivar.Default)
		o, _ := v.OneShotEntry()
		if d != own || o != "" {
			t.Errorf("lifted: default %q (want the box's %q), one-shot %q", d, own, o)
		}
		gone("lifted")
	}
	v.Clear(efivar.Default)
	// The variable cannot be written: nothing stays on the ESP.
	os.Mkdir(filepath.Join(vars, efivar.Default), 0o755)
	if _, err := layWayBack(v, esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0"); err == nil {
		t.Fatal("laid with a variable that cannot be set")
	}
	gone("a failed lay")
	os.Remove(filepath.Join(vars, efivar.Default))
	// Laid, then the variables cannot be cleared: the rescue still goes.
	if _, err := layWayBack(v, esp, []byte("kernel"), []byte("initramfs"), "console=ttyS0"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(vars, efivar.OneShot), 0o755) // a variable that cannot be read
	liftWayBack(efivar.Vars{Dir: vars}, esp, "")
	gone("a lift whose one-shot variable cannot be read")
}

func TestESPWhere(t *testing.T) {
	esp := release.Extent{Start: 1 << 20, Bytes: 96 << 20}
	disk := &inventory.Disk{Partitions: []inventory.Partition{
		{Start: 1 << 20, Size: 96 << 20, PartType: strings.ToUpper(release.TypeGUIDs["esp"])},
		{Start: 97 << 20, Size: 64 << 20, PartType: release.TypeGUIDs["root-x86-64"]},
	}}
	if !espWhere(disk, esp) {
		t.Error("the old ESP where the new one goes: not found")
	}
	for name, e := range map[string]release.Extent{
		"elsewhere":   {Start: 2 << 20, Bytes: 96 << 20},
		"larger":      {Start: 1 << 20, Bytes: 128 << 20},
		"on the root": {Start: 97 << 20, Bytes: 64 << 20},
	} {
		if espWhere(disk, e) {
			t.Errorf("%s: taken", name)
		}
	}
}
