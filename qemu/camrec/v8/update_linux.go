package v8

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/passeur/passeur/initramfs/network"
)

// UpdateDir is the folder of the state partition that holds the box's
// enrolment for updates staged from the running system: update.json (the
// repository or mirror, the account, the fleet server: the key's
// passeur/config.json format), root.json (the repository's trusted
// root) and vendor.pub (the key releases are signed with).
const UpdateDir = "passeur"

// BoardFile names, in the root, the board camrec runs on: its rescue
// image is the one passeur stage brings.
const BoardFile = "/etc/camrec/board"

// updateEvent is the payload of camrec's "update" event.
type updateEvent struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// mountedVolume is a data volume camrecd mounted.
type mountedVolume struct{ dev, point, typ string }

// mounted are the data volumes camrecd mounted, in order.
var mounted []mountedVolume

// update is what a vendor's update service does on the box: with an
// enrolment on the state partition, it brings the network up, mounts the
// recordings' volumes read-write (the staging area is on one), and runs
// passeur stage -apply reboot; once the rescue is loaded, it unmounts
// what it mounted and reboots into it by kexec. Without an enrolment it
// does nothing.
func update(state string) error {
	dir := filepath.Join(state, UpdateDir)
	if _, err := os.Stat(filepath.Join(dir, "update.json")); err != nil {
		return nil
	}
	board, err := os.ReadFile(BoardFile)
	if err != nil {
		return err
	}
	// The root is read-only: the lease's resolver goes to /run.
	if err := os.WriteFile("/run/resolv.conf", nil, 0o644); err == nil {
		unix.Mount("/run/resolv.conf", "/etc/resolv.conf", "", unix.MS_BIND, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	lease, err := network.DHCP(ctx, 15*time.Second, 3)
	cancel()
	if err != nil {
		return err
	}
	fmt.Printf("camrec: network %s is %s\n", lease.Interface, lease.Address)
	// Read-write for passeur stage; back to read-only if the update does
	// not go through.
	var rw []mountedVolume
	defer func() {
		for _, v := range rw {
			unix.Unmount(v.point, 0)
			mountReadOnly(v.dev, v.point, v.typ)
		}
	}()
	for _, v := range mounted {
		if err := unix.Unmount(v.point, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", v.point, err)
		}
		rw = append(rw, v)
		if err := unix.Mount(v.dev, v.point, v.typ, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount %s on %s read-write: %w", v.dev, v.point, err)
		}
	}
	cmd := exec.Command("/usr/bin/passeur", "stage", "-config", filepath.Join(dir, "update.json"),
		"-repo-root", filepath.Join(dir, "root.json"), "-trust", filepath.Join(dir, "vendor.pub"),
		"-board", strings.TrimSpace(string(board)), "-apply", "reboot")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("passeur stage: %w", err)
	}
	loaded, _ := os.ReadFile("/sys/kernel/kexec_loaded")
	if strings.TrimSpace(string(loaded)) != "1" {
		return errors.New("passeur stage loaded no kernel for kexec")
	}
	// Everything it mounted comes down clean before the kexec: a volume
	// that will not is no reboot, and nothing stays loaded.
	for i := len(rw) - 1; i >= 0; i-- {
		if err := unix.Unmount(rw[i].point, 0); err != nil {
			unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
			return fmt.Errorf("unmount %s before the reboot: %w", rw[i].point, err)
		}
		rw = rw[:i]
	}
	if err := unix.Unmount(state, 0); err != nil {
		unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD)
		return fmt.Errorf("unmount %s before the reboot: %w", state, err)
	}
	unix.Sync()
	events.Emit("update", updateEvent{OK: true})
	fmt.Println("camrec: rebooting into the staged update")
	return unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
}
