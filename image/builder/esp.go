package builder

import (
	"fmt"
	"time"

	"github.com/passeur/passeur/image/fat"
	"github.com/passeur/passeur/image/release"
)

// makeESP makes a FAT32 image of size bytes holding systemd-boot as the
// removable-media loader, the kernel, the initrd and one boot entry.
func makeESP(img string, size int64, e ESP, m *release.Manifest, vmlinuz, initrd, options string, epoch int64) error {
	dir := m.Product
	entry := fmt.Sprintf("title %s\nversion %s\nlinux /%s/vmlinuz\ninitrd /%s/initrd.zst\noptions %s\n", e.Title, m.Version, dir, dir, options)
	files := []fat.File{
		{Path: "/EFI/BOOT/BOOTX64.EFI", From: e.Loader},
		{Path: "/loader/loader.conf", Data: []byte("default " + m.Product + ".conf\ntimeout 0\n")},
		{Path: "/loader/entries/" + m.Product + ".conf", Data: []byte(entry)},
		{Path: "/" + dir + "/vmlinuz", From: vmlinuz},
		{Path: "/" + dir + "/initrd.zst", From: initrd},
	}
	if err := fat.Make(img, size, "ESP", files, nil, time.Unix(epoch, 0).UTC()); err != nil {
		return fmt.Errorf("ESP: %w", err)
	}
	return nil
}
