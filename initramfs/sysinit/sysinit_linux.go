// Package sysinit is what every Go /init passeur builds does first: mount
// the pseudo filesystems, load kernel modules with their dependencies, and
// read the kernel's uptime, release and command line.
package sysinit

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// MountPseudo mounts the filesystems every Linux userland expects.
func MountPseudo() error {
	for _, m := range []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", m.dst, err)
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	// u-root's gosh and others look for /dev/ptmx.
	os.Symlink("pts/ptmx", "/dev/ptmx")
	return nil
}

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Uptime reads /proc/uptime, in seconds.
func Uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	return up
}

// LoadModules loads modules, each with its dependencies, from the
// modules.dep of the running kernel's module tree, in parallel: u-root's
// Prober loads a shared dependency once. A module that fails is passed to
// fail and the others still load: a missing NIC driver must not cost the
// disks. It returns how many loaded and how long it took.
func LoadModules(modules []string, params map[string]string, fail func(error)) (int, time.Duration) {
	start := time.Now()
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		fail(err)
		return 0, time.Since(start)
	}
	var wg sync.WaitGroup
	var loaded atomic.Int32
	for _, m := range modules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Probe(m, params[m]); err != nil {
				fail(fmt.Errorf("load %s: %w", m, err))
				return
			}
			loaded.Add(1)
		}()
	}
	wg.Wait()
	return int(loaded.Load()), time.Since(start)
}

// Cmdline reads the kernel command line.
func Cmdline() string {
	b, _ := os.ReadFile("/proc/cmdline")
	return strings.TrimSpace(string(b))
}
