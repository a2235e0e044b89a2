// Package agent is passeur's PID 1 in the rescue initramfs: it brings the
// machine up (pseudo filesystems, the board's modules, block devices),
// reports what it finds as events and as tables on the console, and then does
// what the kernel command line's passeur.* keys ask.
package agent

import (
	"io"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/initramfs/control"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/newsys"
	"github.com/passeur/passeur/initramfs/staging"
	"github.com/u-root/u-root/pkg/boot"
)

// Agent holds what every step of a run shares.
type Agent struct {
	Console io.Writer // human-readable lines and events
	Events  *event.Emitter
	Log     Logger
	Board   *board.Board
	Config  config.Config
	hub     *control.Hub // the event stream served on the control channel
	runLog  *runLog      // the console, saved with the run on the media
	want    string       // the release version to install, when one is named
	// through are the releases a repository's route passes without a boot
	// on the way to want, oldest first, their manifests verified.
	through []*release.Manifest
	noMedia bool          // no install media was found at boot
	ram     *migrate.Loop // the media made in RAM, held for the run
	// staged is the staging area passeur.staged= names, attached as the
	// run's install media.
	staged *staging.Attached
	// wroteSystem is set once a step that writes the system disk began:
	// from then on the old system may be gone.
	wroteSystem bool
	// thenRollback is set when the operator chose, at a failed outcome,
	// to roll the migration back.
	thenRollback bool
	// healthy is set when this boot ended a run with the new system's
	// health report OK: a repository's route may go on from it.
	healthy bool
	// mount mounts the new system's partitions (nil: loop devices).
	mount newsys.Mounter
	// imageRoot is where the rescue image's own files are (trusted keys,
	// product profiles): "" for /.
	imageRoot string
	// runRoot, when set, stands for /run/passeur: where the new system's
	// partitions are mounted (a host running the steps).
	runRoot string
	// restart, when set, starts the new system instead of kexec or a
	// reboot: a host running the steps records it.
	restart func(img *boot.LinuxImage) error
	// efivars, when set, stands for efivarfs (efivar.Dir).
	efivars string
	// own is what the way back lays, made before the new ESP is written.
	own *ownRescue
	// dropCache, when set, stands for emptying the page cache before a
	// read-back (a host has no business dropping its own).
	dropCache func() error
}

// root is the rescue image's root.
func (a *Agent) root() string {
	if a.imageRoot == "" {
		return "/"
	}
	return a.imageRoot
}

// Logger is where the agent's steps report progress; PID 1 sends it to the
// console and the kernel log.
type Logger interface {
	Printf(format string, a ...any)
}

// errorEvent is the payload of an "error" event.
type errorEvent struct {
	Step  string `json:"step"`
	Error string `json:"error"`
}

// Fail reports a problem of step as an error event and a console line.
func (a *Agent) Fail(step string, err error) {
	a.Log.Printf("ERROR %s: %v", step, err)
	a.Events.Emit("error", errorEvent{Step: step, Error: err.Error()})
}

// readyEvent is the payload of the "ready" event.
type readyEvent struct {
	Uptime        float64 `json:"uptime"` // seconds since the kernel started
	Kernel        string  `json:"kernel"`
	Board         string  `json:"board"`
	Modules       int     `json:"modules"`
	ModuleSeconds float64 `json:"module_seconds"`
	SettleSeconds float64 `json:"settle_seconds"`
}

// inventoryEvent is the payload of the "inventory" event.
type inventoryEvent struct {
	Disks []inventory.Disk `json:"disks"`
	Links []Link           `json:"links"`
}

// seconds renders a duration for an event.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }
