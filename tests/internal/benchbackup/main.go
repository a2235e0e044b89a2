// Command benchbackup is the /init of the backup benchmark. Laid over the
// rescue image as a second initramfs archive (its /init replaces the
// agent), it loads the board's modules, mounts the FAT32 key read-write,
// makes a tree in tmpfs, and times passeur's backup of it to the key
// against the rescue system's own `cp -r` (/bbin/cp) of the same tree to
// the same mount, each followed by sync, with the page cache dropped
// before each. It prints a "bench" event and powers off.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/initramfs/backup"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/sysinit"
	"golang.org/x/sys/unix"
)

func main() {
	ev := event.NewEmitter(os.Stdout)
	if err := run(ev); err != nil {
		ev.Emit("error", map[string]string{"step": "bench", "error": err.Error()})
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run(ev *event.Emitter) error {
	if err := sysinit.MountPseudo(); err != nil {
		return err
	}
	b, err := board.LoadFile("/" + board.ImageFile)
	if err != nil {
		return err
	}
	sysinit.LoadModules(b.Modules, b.ModuleParams, func(error) {})
	dev := "/dev/sda"
	for i := 0; i < 300; i++ {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.MkdirAll("/mnt", 0o755)
	if err := unix.Mount(dev, "/mnt", "vfat", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	src := "/tmp/src"
	var total int64
	for i := range 4 {
		p := filepath.Join(src, "etc/camrec/media", fmt.Sprintf("clip%d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := make([]byte, 16<<20)
		for j := range data {
			data[j] = byte(j*7 + i)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		total += int64(len(data))
	}
	for i := range 500 {
		p := filepath.Join(src, "etc/camrec/cams", fmt.Sprintf("cam%03d.conf", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, 16<<10), 0o644)
		total += 16 << 10
	}
	items, _, err := backup.Collect(src, []string{"/etc/camrec"}, backup.OriginSystem)
	if err != nil {
		return err
	}
	drop := func() { unix.Sync(); os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0) }
	var tb, tc time.Duration
	const rounds = 2
	for range rounds {
		drop()
		t0 := time.Now()
		if _, err := backup.Write("/mnt/Backup/bench", backup.Manifest{}, items, backup.Options{}); err != nil {
			return err
		}
		unix.Sync()
		tb += time.Since(t0)
		os.RemoveAll("/mnt/Backup")
		drop()
		t0 = time.Now()
		if out, err := exec.Command("/bbin/cp", "-r", src, "/mnt/cp").CombinedOutput(); err != nil {
			return fmt.Errorf("cp -r: %v: %s", err, out)
		}
		unix.Sync()
		tc += time.Since(t0)
		os.RemoveAll("/mnt/cp")
	}
	mib := float64(total) / (1 << 20) * rounds
	return ev.Emit("bench", map[string]float64{"mib": mib, "backup_s": tb.Seconds(), "cp_s": tc.Seconds(),
		"backup_mibs": mib / tb.Seconds(), "cp_mibs": mib / tc.Seconds()})
}
