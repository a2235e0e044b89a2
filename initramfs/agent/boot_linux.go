package agent

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

// mountPseudo mounts the filesystems every Linux userland expects.
func mountPseudo() error {
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

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// uptime reads /proc/uptime.
func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	var up float64
	fmt.Sscanf(string(b), "%f", &up)
	return up
}

// loadModules loads the board's modules, each with its dependencies, from
// the modules.dep the image builder generated, in parallel: u-root's Prober
// loads a shared dependency once. A module that fails is reported and the
// others still load: a missing NIC driver must not cost the disks.
func (a *Agent) loadModules() (int, time.Duration) {
	start := time.Now()
	p, err := kmodule.NewProber(kmodule.ProbeOpts{})
	if err != nil {
		a.Fail("modules", err)
		return 0, time.Since(start)
	}
	var wg sync.WaitGroup
	var loaded atomic.Int32
	for _, m := range a.Board.Modules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Probe(m, a.Board.ModuleParams[m]); err != nil {
				a.Fail("modules", fmt.Errorf("load %s: %w", m, err))
				return
			}
			loaded.Add(1)
		}()
	}
	wg.Wait()
	return int(loaded.Load()), time.Since(start)
}

// cmdline reads the kernel command line.
func cmdline() string {
	b, _ := os.ReadFile("/proc/cmdline")
	return strings.TrimSpace(string(b))
}
