package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/passeur/passeur/initramfs/event"
)

// VM is a running QEMU.
type VM struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	LogPath string // the whole serial console
	dir     string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every new output
	out     bytes.Buffer  // console output so far
	events  []event.Event
	used    map[string]int // per event type, how many WaitEvent returned
	matched int            // console offset Expect has consumed
	exited  bool
	exitErr error
	last    time.Time // when the guest last printed
}

// SilenceLimit ends a wait when the guest has printed nothing for this
// long: every boot and every step passeur takes prints well within it, and
// a guest that hangs under TCG (seen, rarely, on these hosts: QEMU spinning
// on both cores, no output) then fails its test in minutes, not after the
// wait's whole timeout.
var SilenceLimit = 4 * time.Minute

// ErrSilent is returned when the guest printed nothing for SilenceLimit.
var ErrSilent = errors.New("guest silent (hung?)")

// Start boots a VM. The caller must Stop it; tests use Test, which does.
func Start(o Options) (*VM, error) {
	args, err := o.Args()
	if err != nil {
		return nil, err
	}
	vm := &VM{changed: make(chan struct{}), used: map[string]int{}, last: time.Now(), LogPath: filepath.Join(o.Dir, "console.log"), dir: o.Dir}
	logf, err := os.Create(vm.LogPath)
	if err != nil {
		return nil, err
	}
	vm.cmd = exec.Command(o.Board.QEMU.Binary, args...)
	// QEMU dies with the process that started it, even if that one is killed.
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stdout, err := vm.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	vm.cmd.Stderr = vm.cmd.Stdout
	if vm.stdin, err = vm.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "# %s %q\n", o.Board.QEMU.Binary, args)
	if err := vm.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Board.QEMU.Binary, err)
	}
	var sink io.Writer = logf
	if o.Console != nil {
		sink = io.MultiWriter(logf, o.Console)
	}
	go vm.read(stdout, logf, sink)
	return vm, nil
}

// read copies the console into the log and the buffer, parsing events.
func (vm *VM) read(r io.Reader, logf *os.File, sink io.Writer) {
	defer logf.Close()
	br := bufio.NewReader(r)
	var line []byte
	for {
		b, err := br.ReadByte()
		if err == nil {
			sink.Write([]byte{b})
			line = append(line, b)
		}
		vm.mu.Lock()
		if err == nil {
			vm.last = time.Now()
			vm.out.WriteByte(b)
			if b == '\n' {
				if ev, ok, perr := event.Parse(string(line)); ok && perr == nil {
					vm.events = append(vm.events, ev)
				}
				line = line[:0]
			}
		}
		if err != nil {
			vm.exitErr = vm.cmd.Wait()
			vm.exited = true
		}
		if err != nil || b == '\n' || br.Buffered() == 0 {
			close(vm.changed)
			vm.changed = make(chan struct{})
		}
		vm.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// ErrTimeout is returned when the VM did not do what was waited for in time.
var ErrTimeout = errors.New("timed out")

// ErrExited is returned when QEMU exited before doing what was waited for.
var ErrExited = errors.New("qemu exited")

// wait calls check under the lock until it returns true or an error, QEMU
// exits, or timeout passes.
func (vm *VM) wait(timeout time.Duration, what string, check func() (bool, error)) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		vm.mu.Lock()
		ok, err := check()
		ch, exited, exitErr, last := vm.changed, vm.exited, vm.exitErr, vm.last
		vm.mu.Unlock()
		if ok || err != nil {
			return err
		}
		if exited {
			return fmt.Errorf("waiting for %s: %w (%v); console in %s", what, ErrExited, exitErr, vm.LogPath)
		}
		if time.Since(last) > SilenceLimit {
			return fmt.Errorf("waiting for %s: %w: nothing printed for %v; console in %s", what, ErrSilent, time.Since(last).Round(time.Second), vm.LogPath)
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline:
			return fmt.Errorf("waiting for %s: %w after %v; console in %s", what, ErrTimeout, timeout, vm.LogPath)
		}
	}
}

// WaitEvent returns the next event of type typ not yet returned.
func (vm *VM) WaitEvent(typ string, timeout time.Duration) (event.Event, error) {
	var got event.Event
	err := vm.wait(timeout, fmt.Sprintf("event %q", typ), func() (bool, error) {
		n := 0
		for _, ev := range vm.events {
			if ev.Type != typ {
				continue
			}
			if n == vm.used[typ] {
				vm.used[typ]++
				got = ev
				return true, nil
			}
			n++
		}
		return false, nil
	})
	return got, err
}

// WaitMatch waits until an event match accepts has been seen (since the
// VM started) and returns it.
func (vm *VM) WaitMatch(timeout time.Duration, what string, match func(event.Event) bool) (event.Event, error) {
	var got event.Event
	err := vm.wait(timeout, what, func() (bool, error) {
		for _, ev := range vm.events {
			if match(ev) {
				got = ev
				return true, nil
			}
		}
		return false, nil
	})
	return got, err
}

// WaitAny waits until an event of one of the types has been seen (since
// the VM started) and returns its type.
func (vm *VM) WaitAny(timeout time.Duration, types ...string) (string, error) {
	ev, err := vm.WaitMatch(timeout, fmt.Sprintf("one of the events %v", types), func(ev event.Event) bool {
		return slices.Contains(types, ev.Type)
	})
	return ev.Type, err
}

// Events returns every event seen so far.
func (vm *VM) Events() []event.Event {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]event.Event(nil), vm.events...)
}

// Expect waits for console output matching re after what earlier Expect
// calls matched, and returns the match.
func (vm *VM) Expect(re *regexp.Regexp, timeout time.Duration) (string, error) {
	var got string
	err := vm.wait(timeout, fmt.Sprintf("output matching %q", re), func() (bool, error) {
		rest := vm.out.Bytes()[vm.matched:]
		loc := re.FindIndex(rest)
		if loc == nil {
			return false, nil
		}
		got = string(rest[loc[0]:loc[1]])
		vm.matched += loc[1]
		return true, nil
	})
	return got, err
}

// Console returns the console output so far.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.out.String()
}

// Type sends s to the serial console.
func (vm *VM) Type(s string) error {
	_, err := io.WriteString(vm.stdin, s)
	return err
}

// Monitor sends one command to QEMU's human monitor (Options.Monitor) and
// returns what it answered.
func (vm *VM) Monitor(command string) (string, error) {
	c, err := net.DialTimeout("unix", filepath.Join(vm.dir, "monitor.sock"), 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("qemu monitor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, command+"\n"); err != nil {
		return "", err
	}
	// The monitor echoes the command and prompts again when it is done.
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for strings.Count(out.String(), "(qemu)") < 2 {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String(), err
		}
	}
	return out.String(), nil
}

// Wait waits for QEMU to exit by itself and returns how it exited.
func (vm *VM) Wait(timeout time.Duration) error {
	var err error
	werr := vm.wait(timeout, "qemu to exit", func() (bool, error) {
		err = vm.exitErr
		return vm.exited, nil
	})
	if werr != nil {
		return werr
	}
	return err
}

// Stop kills QEMU if it still runs and waits for it to be gone.
func (vm *VM) Stop() {
	vm.mu.Lock()
	exited := vm.exited
	vm.mu.Unlock()
	if !exited && vm.cmd.Process != nil {
		syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	}
	vm.stdin.Close()
	vm.wait(30*time.Second, "qemu to die", func() (bool, error) { return vm.exited, nil })
}
