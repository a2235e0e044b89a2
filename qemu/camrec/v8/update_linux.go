package v8

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/network"
	"github.com/passeur/passeur/initramfs/newsys"
)

// passeurBin is where the vendor laid passeur stage: /usr/bin on camrec
// 8's root, /usr/local/bin where it was copied onto a camrec 7.
func passeurBin() string {
	for _, p := range []string{"/usr/bin/passeur", "/usr/local/bin/passeur"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "passeur"
}

// BoardFile names, in the root, the board camrec runs on: its rescue
// image is the one passeur stage brings.
const BoardFile = "/etc/camrec/board"

// updateEvent is the payload of camrec's "update" event.
type updateEvent struct {
	OK bool `json:"ok"`
	// Apply is when the update is applied: at boot ("reboot": now), or at
	// the box's power-off ("poweroff").
	Apply string `json:"apply"`
	// Staged tells that an update was staged and the box reboots into it;
	// false when there was nothing to stage.
	Staged bool `json:"staged"`
	// OneShot: the rescue starts from systemd-boot's one-shot entry (the
	// kernel refused kexec).
	OneShot bool   `json:"one_shot,omitempty"`
	Error   string `json:"error,omitempty"`
}

// mountedVolume is a data volume camrecd mounted.
type mountedVolume struct{ dev, point, typ string }

// mounted are the data volumes camrecd mounted, in order.
var mounted []mountedVolume

// online tells that the network is up (its lease taken at boot).
var online bool

// system is where a box's update service finds what it needs on the
// running system.
type system struct {
	// enrolment is the enrolment's folder: UpdateDir on camrec 8's state
	// partition, /etc/passeur on camrec 7's root.
	enrolment string
	// health is the health report passeur stage settles a staged run
	// with: camrec 8's; "" for camrec 7, which writes none.
	health string
	// release lets go of what the system still holds (its state, or its
	// root made read-only) before it restarts.
	release func() error
	// esp names the system's ESP (camrec 8's, systemd-boot its loader),
	// mounted read-write for passeur stage -esp when the running kernel
	// refuses kexec (the rescue goes there) and at the box's power-off
	// (the rescue goes there too, the one-shot entry set first). "" for
	// camrec 7.
	esp string
}

// espDir is where camrec mounts its ESP for passeur stage.
const espDir = "/run/camrec/esp"

// NoKexecFile, on camrec 8's state partition, makes camrecd forbid kexec
// at boot (kernel.kexec_load_disabled), as a vendor whose kernel is
// hardened does: a staged update then goes by systemd-boot's one-shot
// entry.
const NoKexecFile = "camrec/no-kexec"

// camrec8 is camrec 8's system, its state partition mounted on state.
func camrec8(state string) system {
	return system{enrolment: filepath.Join(state, UpdateDir), health: filepath.Join(state, HealthFile),
		release: func() error { return unix.Unmount(state, 0) }, esp: "PARTLABEL=esp"}
}

// camrec7 is camrec 7's: everything on its root, which it remounts
// read-only before it restarts.
var camrec7 = system{enrolment: "/" + LegacyUpdateDir,
	release: func() error { return unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "") }}

// update is what a vendor's update service does on the box: with an
// enrolment on the state partition, it brings the network up, mounts the
// recordings' volumes read-write (the staging area is on one), and runs
// passeur stage -apply APPLY, with its health report (-health: the
// outcome of a staged update it is, with nobody at the box, is recorded
// and reported there). Once the rescue is loaded, it unmounts what it
// mounted and its state, and restarts into it by kexec: at boot
// (apply "reboot") it migrates and boots the new system; at the box's
// power-off (apply "poweroff") it migrates and powers off. With nothing
// to stage it goes on with its volumes read-only again and reports false.
// Without an enrolment it does nothing.
func update(sys system, apply string) (bool, error) {
	dir := sys.enrolment
	if _, err := os.Stat(filepath.Join(dir, "update.json")); err != nil {
		return false, nil
	}
	board, err := os.ReadFile(BoardFile)
	if err != nil {
		return false, err
	}
	if !online {
		// The root is read-only: the lease's resolver goes to /run.
		if err := os.WriteFile("/run/resolv.conf", nil, 0o644); err == nil {
			unix.Mount("/run/resolv.conf", "/etc/resolv.conf", "", unix.MS_BIND, "")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		lease, err := network.DHCP(ctx, 15*time.Second, 3)
		cancel()
		if err != nil {
			return false, err
		}
		online = true
		fmt.Printf("camrec: network %s is %s\n", lease.Interface, lease.Address)
	}
	// Read-write for passeur stage; back to read-only if the update does
	// not go through.
	var rw []mountedVolume
	readOnly := func() {
		for _, v := range rw {
			unix.Unmount(v.point, 0)
			mountReadOnly(v.dev, v.point, v.typ)
		}
		rw = nil
	}
	defer readOnly()
	for _, v := range mounted {
		if err := unix.Unmount(v.point, 0); err != nil {
			return false, fmt.Errorf("unmount %s: %w", v.point, err)
		}
		rw = append(rw, v)
		if err := unix.Mount(v.dev, v.point, v.typ, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return false, fmt.Errorf("mount %s on %s read-write: %w", v.dev, v.point, err)
		}
	}
	args := []string{"stage", "-config", filepath.Join(dir, "update.json"),
		"-repo-root", filepath.Join(dir, "root.json"), "-trust", filepath.Join(dir, "vendor.pub"),
		"-board", strings.TrimSpace(string(board)), "-apply", apply}
	if sys.health != "" {
		args = append(args, "-health", sys.health)
	}
	espMounted := false
	if sys.esp != "" && (!kexecAllowed() || apply == "poweroff") {
		// Only then (a kernel that refuses kexec, or the shutdown path,
		// which has the one-shot entry set first): a FAT mounted
		// read-write is marked dirty on the disk until it is unmounted.
		disks, err := scan()
		if err != nil {
			return false, err
		}
		dev, err := inventory.Find(disks, sys.esp)
		if err != nil {
			return false, fmt.Errorf("the ESP: %w", err)
		}
		os.MkdirAll(espDir, 0o755)
		if err := unix.Mount(dev, espDir, "vfat", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return false, fmt.Errorf("mount the ESP %s: %w", dev, err)
		}
		espMounted = true
		defer unix.Unmount(espDir, 0) // once more, where the restart did not happen
		args = append(args, "-esp", espDir)
	}
	cmd := exec.Command(passeurBin(), args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return false, fmt.Errorf("passeur stage: %w", err)
	}
	// The rescue is loaded for a kexec, or laid on the ESP for the next
	// boot (systemd-boot's one-shot entry), or nothing was staged.
	loaded, _ := os.ReadFile("/sys/kernel/kexec_loaded")
	kexec := strings.TrimSpace(string(loaded)) == "1"
	entry, _ := efivar.Vars{Dir: efivar.Dir}.OneShotEntry()
	oneShot := !kexec && espMounted && entry == newsys.RescueEntry
	unload := func() {
		unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
		efivar.Vars{Dir: efivar.Dir}.ClearIf(newsys.RescueEntry, efivar.OneShot)
	}
	if !kexec && !oneShot { // nothing to stage
		readOnly() // what passeur stage wrote is on the disk before anyone hears of it
		events.Emit("update", updateEvent{OK: true, Apply: apply})
		return false, nil
	}
	// Everything it mounted comes down clean before the restart: a
	// volume that will not is no restart, and nothing stays loaded.
	if espMounted {
		if err := unix.Unmount(espDir, 0); err != nil {
			unload()
			return false, fmt.Errorf("unmount the ESP before the restart: %w", err)
		}
	}
	for i := len(rw) - 1; i >= 0; i-- {
		if err := unix.Unmount(rw[i].point, 0); err != nil {
			unload()
			return false, fmt.Errorf("unmount %s before the restart: %w", rw[i].point, err)
		}
		rw = rw[:i]
	}
	if err := sys.release(); err != nil {
		unload()
		return false, fmt.Errorf("before the restart: %w", err)
	}
	unix.Sync()
	how := unix.LINUX_REBOOT_CMD_KEXEC
	if oneShot {
		// The firmware starts the rescue: at once for a reboot, at the
		// next power-on for a power-off.
		how = unix.LINUX_REBOOT_CMD_RESTART
		if apply == "poweroff" {
			how = unix.LINUX_REBOOT_CMD_POWER_OFF
		}
	}
	events.Emit("update", updateEvent{OK: true, Staged: true, Apply: apply, OneShot: oneShot})
	fmt.Printf("camrec: restarting into the staged update (then %s, one-shot entry %v)\n", apply, oneShot)
	return true, unix.Reboot(how)
}

// kexecAllowed tells whether the running kernel loads kernels for kexec.
func kexecAllowed() bool {
	if _, err := os.Stat("/sys/kernel/kexec_loaded"); err != nil {
		return false // built without it
	}
	off, _ := os.ReadFile("/proc/sys/kernel/kexec_load_disabled")
	return strings.TrimSpace(string(off)) != "1"
}

// forbidKexec sets kernel.kexec_load_disabled when the state asks for it
// (NoKexecFile): once set, this boot's kernel loads no kernel for kexec.
func forbidKexec(state string) {
	if _, err := os.Stat(filepath.Join(state, NoKexecFile)); err != nil {
		return
	}
	if err := os.WriteFile("/proc/sys/kernel/kexec_load_disabled", []byte("1\n"), 0o644); err != nil {
		fail("kexec", err)
		return
	}
	fmt.Println("camrec: kexec disabled (kernel.kexec_load_disabled=1)")
}

// console reads the box's console for its operator's commands, as the
// vendor's shell does: poweroff (the box's shutdown: an update the
// account gives is applied first, and the rescue powers the box off), or
// reboot. Without a console it waits forever.
func console(sys system) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "poweroff":
			fmt.Println("camrec: shutting down")
			if _, err := update(sys, "poweroff"); err != nil {
				fail("update", err)
				events.Emit("update", updateEvent{Apply: "poweroff", Error: err.Error()})
			}
			down(sys, unix.LINUX_REBOOT_CMD_POWER_OFF)
		case "reboot":
			down(sys, unix.LINUX_REBOOT_CMD_RESTART)
		case "":
		default:
			fmt.Println("camrec: commands: poweroff, reboot")
		}
	}
	halt()
}

// down unmounts the data volumes, lets go of the system, and powers off
// or restarts the box.
func down(sys system, how int) {
	for i := len(mounted) - 1; i >= 0; i-- {
		unix.Unmount(mounted[i].point, 0)
	}
	sys.release()
	unix.Sync()
	unix.Reboot(how)
	halt()
}
