package kmod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseInfo(t *testing.T) {
	data := []byte("license=GPL\x00depends=jbd2,mbcache,crc16\x00intree=Y\x00name=ext4\x00vermagic=6.1.0\x00")
	got := ParseInfo(data)
	if got.Name != "ext4" || !slices.Equal(got.Depends, []string{"jbd2", "mbcache", "crc16"}) {
		t.Errorf("ParseInfo = %+v", got)
	}
	soft := ParseInfo([]byte("softdep=pre: crc32c foo post: bar\x00alias=fs-xfs\x00"))
	if !slices.Equal(soft.SoftPre, []string{"crc32c", "foo"}) || !slices.Equal(soft.Aliases, []string{"fs-xfs"}) {
		t.Errorf("ParseInfo softdep/alias = %+v", soft)
	}
	if got := ParseInfo([]byte("depends=\x00name=loop\x00")); len(got.Depends) != 0 {
		t.Errorf("empty depends parsed as %q", got.Depends)
	}
}

func TestCanonical(t *testing.T) {
	if Canonical("usb-storage.ko") != "usb_storage" || Canonical("usb_storage") != "usb_storage" {
		t.Error("Canonical does not fold - and _")
	}
}

func exampleSet(t *testing.T) *Set {
	t.Helper()
	s, err := NewSet(map[string]string{
		"ext4":    "kernel/fs/ext4/ext4.ko",
		"jbd2":    "kernel/fs/jbd2/jbd2.ko",
		"crc16":   "kernel/lib/crc16.ko",
		"mbcache": "kernel/fs/mbcache.ko",
		"loop":    "kernel/drivers/block/loop.ko",
	}, map[string][]string{
		"ext4": {"jbd2", "mbcache", "crc16"},
		"jbd2": {"crc16"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadOrder(t *testing.T) {
	got := exampleSet(t).LoadOrder("ext4")
	want := []string{"crc16", "jbd2", "mbcache", "ext4"}
	if !slices.Equal(got, want) {
		t.Errorf("LoadOrder(ext4) = %v, want %v", got, want)
	}
}

func TestWriteModulesDep(t *testing.T) {
	var b strings.Builder
	if err := exampleSet(t).WriteModulesDep(&b); err != nil {
		t.Fatal(err)
	}
	want := `kernel/lib/crc16.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko
kernel/drivers/block/loop.ko:
kernel/fs/mbcache.ko:
`
	if b.String() != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestNewSetRejectsOpenSet(t *testing.T) {
	_, err := NewSet(map[string]string{"ext4": "ext4.ko"}, map[string][]string{"ext4": {"jbd2"}})
	if err == nil {
		t.Error("NewSet with a missing dependency: want an error")
	}
}

// TestResolveDebianTree runs on the real Debian module tree when build.sh
// has fetched it (PASSEUR_MODULES names lib/modules/<release>).
func TestResolveDebianTree(t *testing.T) {
	dir := os.Getenv("PASSEUR_MODULES")
	if dir == "" {
		t.Skip("PASSEUR_MODULES not set (build.sh test sets it to the fetched kernel's module tree)")
	}
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := tree.Resolve([]string{"ext4", "usb-storage", "virtio_scsi"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ext4", "jbd2", "mbcache", "usb_storage", "usbcore", "scsi_mod", "virtio_scsi"} {
		if set.Path(n) == "" {
			t.Errorf("%s missing from the resolved set %v", n, set.Names())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, set.Path("usb_storage"))); err != nil {
		t.Errorf("resolved path of usb_storage: %v", err)
	}
	order := set.LoadOrder("usb_storage")
	if order[len(order)-1] != "usb_storage" || slices.Index(order, "usbcore") > slices.Index(order, "usb_storage") {
		t.Errorf("LoadOrder(usb_storage) = %v", order)
	}
	// Soft pre-dependencies met inside the set load first: a crc32c provider
	// before ext4 and before libcrc32c (and so before xfs).
	set, err = tree.Resolve([]string{"xfs", "ext4", "crc32c_generic"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"ext4", "libcrc32c", "xfs"} {
		order := set.LoadOrder(m)
		if i, j := slices.Index(order, "crc32c_generic"), slices.Index(order, m); i < 0 || i > j {
			t.Errorf("LoadOrder(%s) = %v: crc32c_generic must come first", m, order)
		}
	}
	if _, err := tree.Resolve([]string{"no_such_module"}); err == nil {
		t.Error("Resolve of an unknown module: want an error")
	}
}
