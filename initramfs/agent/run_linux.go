package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/control"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/media"
	"github.com/passeur/passeur/initramfs/network"
	"github.com/passeur/passeur/initramfs/roles"
	"github.com/passeur/passeur/initramfs/sysinit"
	"golang.org/x/sys/unix"
)

// consoleLog writes log lines to the console and the kernel log.
type consoleLog struct {
	console io.Writer
	kmsg    *os.File
}

func (l consoleLog) Printf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(l.console, "passeur: %s\n", msg)
	if l.kmsg != nil {
		fmt.Fprintf(l.kmsg, "<6>passeur: %s\n", msg)
	}
}

// Main is the whole life of PID 1. It never returns: a returning PID 1
// panics the kernel, which tells nobody what went wrong.
func Main() {
	console := &runLog{out: os.Stdout}
	hub := control.NewHub()
	a := &Agent{Console: console, Events: event.NewEmitter(io.MultiWriter(console, hub)), hub: hub, runLog: console}
	a.Log = consoleLog{console: console}
	if err := sysinit.MountPseudo(); err != nil {
		a.Fail("mount", err)
	}
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		a.Log = consoleLog{console: console, kmsg: k}
	}
	if err := a.guard(a.run); err != nil {
		a.Fail("agent", err)
		if errors.Is(err, ErrBug) {
			a.offerAfterBug()
			if err := a.follow(); err != nil {
				a.Fail("agent", err)
			}
		}
	}
	a.Log.Printf("nothing more to do; waiting (passeur.mode=shell gives a shell)")
	a.Events.Emit("idle", nil)
	for {
		time.Sleep(time.Hour)
	}
}

func (a *Agent) run() error {
	var errs []error
	a.Config, errs = config.FromCmdline(sysinit.Cmdline())
	for _, err := range errs {
		a.Fail("cmdline", err)
	}
	if a.Config.HasDebug("stacks") {
		go a.printStacks(30 * time.Second)
	}
	b, err := board.LoadFile("/" + board.ImageFile)
	if err != nil {
		return err
	}
	a.Board = b
	if err := upLoopback(); err != nil {
		a.Fail("network", err)
	}

	nmods, modTime := sysinit.LoadModules(b.Modules, b.ModuleParams, func(err error) { a.Fail("modules", err) })
	var sys inventory.SysFS = inventory.DirSys("/sys")
	settle, err := Settle(sys, time.Duration(a.Config.SettleMillis)*time.Millisecond, 100*time.Millisecond, 60*time.Second, time.Now, time.Sleep)
	if err != nil {
		a.Fail("settle", err)
	}
	a.Events.Emit("ready", readyEvent{
		Uptime: sysinit.Uptime(), Kernel: sysinit.KernelRelease(), Board: b.Name,
		Modules: nmods, ModuleSeconds: seconds(modTime), SettleSeconds: seconds(settle),
	})

	if a.Config.Control == "vsock" {
		a.serveControl()
	}

	var rec *inventory.Recorder
	if a.Config.HasDebug("sysfs") {
		rec = inventory.NewRecorder(sys)
		sys = rec
	}
	disks, err := inventory.Scan(sys, openDevice)
	if err != nil {
		return err
	}
	if a.Config.Staged.UUID != "" {
		if a.Config.Mode != config.ModeMigrate && a.Config.Mode != config.ModePlan {
			a.Fail("staged", fmt.Errorf("%w: passeur.mode=%s", ErrStagedMode, a.Config.Mode))
			return a.follow()
		}
		if disks, err = a.stagedMedia(disks); err != nil {
			a.Fail("staged", err)
			// Nothing written: back to the old system, unless the firmware
			// started this rescue from its way back (no old system left).
			if a.Config.Unattended && !a.Config.WayBack {
				return a.backToOld(err)
			}
			return a.follow()
		}
	}
	a.noMedia = !a.mediaConfig(disks)
	if a.Config.Net == "dhcp" || a.Config.Repo != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		lease, err := network.DHCP(ctx, 15*time.Second, 3)
		cancel()
		if err != nil {
			a.Fail("network", err)
		} else {
			a.Log.Printf("network: %s is %s (router %s, from %s)", lease.Interface, lease.Address, lease.Router, lease.Server)
			a.Events.Emit("network", lease)
		}
	}
	links, err := listLinks()
	if err != nil {
		a.Fail("network", err)
	}
	inventory.WriteTable(a.Console, disks)
	a.Events.Emit("inventory", inventoryEvent{Disks: disks, Links: links})
	if rec != nil {
		a.Events.Emit("sysfs", map[string]string{"txtar": string(rec.Archive())})
	}
	if v, err := version.Parse(a.Config.Release); err == nil {
		a.want = v.String() // a tag is resolved by the repository, in obtain
	}
	if a.noMedia && a.Config.Repo != "" && a.Config.Mode == config.ModeInstall {
		if disks, err = a.ramMedia(disks); err != nil {
			a.Fail("install", err)
			return a.follow()
		}
	}
	failed := a.guard(func() error {
		a.debugPanic(string(a.Config.Mode))
		switch a.Config.Mode {
		case config.ModePlan:
			return a.plan(disks)
		case config.ModeBackup, config.ModeRecover:
			return a.backup(disks)
		case config.ModeRestore:
			return a.restore(disks)
		case config.ModeMigrate:
			return a.migrate(disks)
		case config.ModeInstall:
			return a.install(disks)
		case config.ModeRollback:
			return a.rollback(disks)
		}
		return nil
	})
	if errors.Is(failed, ErrBug) {
		a.Fail(string(a.Config.Mode), failed)
		a.offerAfterBug()
		a.releaseStaged()
		return a.follow()
	}
	if failed == nil && a.thenRollback { // the operator's choice, at a failed outcome or step
		failed = a.guard(func() error { return a.rollback(disks) })
	}
	if failed != nil {
		a.Fail(string(a.Config.Mode), failed)
		if errors.Is(failed, ErrNothingToInstall) {
			a.offerLeft(disks)
		}
	}
	staged := a.staged != nil
	a.releaseStaged() // its volume clean before whatever comes next, a power cut included
	if failed != nil && staged && a.Config.Unattended && !a.wroteSystem && !a.Config.WayBack {
		return a.backToOld(failed)
	}
	return a.follow()
}

// backToOld ends a staged, unattended run that stopped before the system
// disk was written: nobody is at the box, and its old system is as it
// was, so the box goes back to it (or powers off, as it was going to)
// rather than wait in the rescue. The staged run stays as it is: passeur
// stage hands it off again a bounded number of times.
func (a *Agent) backToOld(why error) error {
	a.Log.Printf("the staged run stopped before the system disk was written: back to the old system (passeur.then=%s)", a.Config.Then)
	a.Events.Emit("staged_stopped", map[string]string{"then": a.Config.Then, "error": why.Error()})
	a.releaseStaged()
	// A one-shot entry the hand-off set first (passeur stage -esp) would
	// start this rescue again at the next power-on, to stop again.
	a.forgetRescue(efivar.OneShot)
	unix.Sync()
	if a.Config.Then == config.ThenPoweroff {
		return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// openDevice opens a block device by kernel name, read-only, for the
// inventory.
func openDevice(name string) (inventory.Device, error) { return os.Open("/dev/" + name) }

// printStacks prints, every period, the agent's goroutines and the kernel
// stack of each of its threads: where a run that hangs is stuck.
func (a *Agent) printStacks(period time.Duration) {
	buf := make([]byte, 1<<20)
	for {
		time.Sleep(period)
		n := runtime.Stack(buf, true)
		fmt.Fprintf(a.Console, "passeur.debug=stacks: goroutines\n%s\n", buf[:n])
		tasks, _ := filepath.Glob("/proc/self/task/*")
		for _, t := range tasks {
			wchan, _ := os.ReadFile(t + "/wchan")
			stack, _ := os.ReadFile(t + "/stack")
			fmt.Fprintf(a.Console, "passeur.debug=stacks: thread %s in %s\n%s", filepath.Base(t), wchan, stack)
		}
	}
}

// serveControl serves the event stream on vsock and checks it end to end
// through vsock_loopback.
func (a *Agent) serveControl() {
	l, err := control.ListenVsock()
	if err != nil {
		a.Fail("control", err)
		return
	}
	go a.hub.Serve(l)
	first, err := control.Check(control.DialLocal)
	if err != nil {
		a.Fail("control", fmt.Errorf("vsock self-check: %w", err))
		return
	}
	a.Events.Emit("control", map[string]any{"transport": "vsock", "port": control.Port, "selfcheck": "first event " + first})
}

// follow does what passeur.mode asks.
func (a *Agent) follow() error {
	switch a.Config.Mode {
	case config.ModePoweroff:
		a.Events.Emit("poweroff", map[string]float64{"uptime": sysinit.Uptime()})
		a.releaseStaged()
		unix.Sync()
		return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	case config.ModeShell:
		for {
			a.Events.Emit("shell", nil)
			if err := a.shell(); err != nil {
				a.Fail("shell", err)
				time.Sleep(time.Second)
			}
		}
	}
	return nil
}

// shell runs the debug shell on the console, as its controlling terminal.
func (a *Agent) shell() error {
	// A serial console has no size until someone sets one; line editors
	// need one to know where to wrap.
	if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil && ws.Col == 0 {
		unix.IoctlSetWinsize(0, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	}
	cmd := exec.Command("/bbin/gosh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PATH=/bbin:/bin", "HOME=/", "TERM=linux")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd.Run()
}

// mediaConfig applies the install media's configuration file, if there is
// one, under the kernel command line (which wins). It reports whether
// install media is here.
func (a *Agent) mediaConfig(disks []inventory.Disk) bool {
	reader := &roles.MountReader{Dir: "/run/passeur/cfg"}
	defer reader.Close()
	_, files, err := media.Find(disks, reader)
	if errors.Is(err, media.ErrNoMedia) {
		return false
	}
	if err != nil {
		return true // two: the mode that needs one says so
	}
	data, err := fs.ReadFile(files, config.File)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.Fail("config", err)
		}
		return true
	}
	c, errs := config.Load(sysinit.Cmdline(), data)
	for _, err := range errs {
		if strings.Contains(err.Error(), config.File) {
			a.Fail("config", err)
		}
	}
	a.Config = c
	a.Log.Printf("configuration: %s on the install media, under the kernel command line", config.File)
	a.Events.Emit("config", map[string]any{"file": config.File, "mode": c.Mode, "unattended": c.Unattended, "age_recipients": len(c.AgeRecipients)})
	return true
}
