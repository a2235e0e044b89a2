package v8

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/passeur/passeur/board"
	"github.com/passeur/passeur/image/config"
	"github.com/passeur/passeur/initramfs/efivar"
	"github.com/passeur/passeur/initramfs/event"
	"github.com/passeur/passeur/initramfs/fstab"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/sysinit"
	"github.com/passeur/passeur/qemu/camrec"
	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

var events = event.NewEmitter(os.Stdout)

// fail reports an error as an event and a console line.
func fail(step string, err error) {
	fmt.Fprintf(os.Stdout, "camrec: ERROR %s: %v\n", step, err)
	events.Emit("error", map[string]string{"step": step, "error": err.Error()})
}

// halt never returns: PID 1 must not exit.
func halt() {
	for {
		time.Sleep(time.Hour)
	}
}

// param returns a key=value of the kernel command line.
func param(key string) string {
	for _, p := range config.SplitCmdline(sysinit.Cmdline()) {
		if v, ok := strings.CutPrefix(p, key+"="); ok {
			return v
		}
	}
	return ""
}

func scan() ([]inventory.Disk, error) {
	return inventory.Scan(inventory.DirSys("/sys"), func(name string) (inventory.Device, error) { return os.Open("/dev/" + name) })
}

// waitFor finds the device spec names, waiting for it to appear.
func waitFor(spec string, limit time.Duration) (string, []inventory.Disk, error) {
	deadline := time.Now().Add(limit)
	for {
		disks, err := scan()
		if err != nil {
			return "", nil, err
		}
		p, err := inventory.Find(disks, spec)
		if err == nil || !errors.Is(err, inventory.ErrNotFound) || time.Now().After(deadline) {
			return p, disks, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// InitMain is /init of camrec 8's initrd: load the board's modules, mount
// the root named by root=PARTUUID=... read-only, and switch to it.
func InitMain() {
	if err := sysinit.MountPseudo(); err != nil {
		fail("mount", err)
	}
	if err := initRoot(); err != nil {
		fail("initrd", err)
		halt()
	}
}

func initRoot() error {
	b, err := board.LoadFile("/" + board.ImageFile)
	if err != nil {
		return err
	}
	sysinit.LoadModules(b.Modules, b.ModuleParams, func(err error) { fail("modules", err) })
	if efivar.UEFI() {
		// Started by UEFI: its variables (efivarfs), as a distribution's
		// init mounts them.
		sysinit.LoadModules(b.ModulesOnDemand, b.ModuleParams, func(err error) { fail("modules", err) })
	}
	spec := param("root")
	if spec == "" {
		return errors.New("no root= on the kernel command line")
	}
	dev, disks, err := waitFor(spec, 30*time.Second)
	if err != nil {
		return fmt.Errorf("root %s: %w", spec, err)
	}
	fs := inventory.FSOf(disks, dev)
	if fs == nil {
		return fmt.Errorf("root %s (%s): no filesystem recognised", spec, dev)
	}
	os.MkdirAll("/newroot", 0o755)
	if err := unix.Mount(dev, "/newroot", fs.Type, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount root %s (%s) on /newroot: %w", dev, fs.Type, err)
	}
	return mount.SwitchRoot("/newroot", "/sbin/init")
}

// ServiceMain is camrecd, /sbin/init of camrec 8's root: mount the state
// partition and the data volumes of its fstab, take over a restored
// configuration and index, run the format steps of its release (version)
// and of the older ones, check every indexed segment, and report health.
func ServiceMain(version string) {
	if err := sysinit.MountPseudo(); err != nil {
		fail("mount", err)
	}
	h, err := serve(version)
	if err != nil {
		fail("camrecd", err)
		halt()
	}
	r := h.Report
	formats := ""
	if h.IndexFormat != 0 {
		formats += fmt.Sprintf(", index v%d", h.IndexFormat)
	}
	if h.ConfigFormat != 0 {
		formats += fmt.Sprintf(", configuration format %d", h.ConfigFormat)
	}
	fmt.Printf("camrec %s: %d cameras, %d segments indexed, %d missing, %d bytes, volumes %v%s\n",
		r.Version, r.Cameras, r.SegmentsIndexed, r.SegmentsMissing, r.Bytes, r.Volumes, formats)
	events.Emit("health", h)
	if param("camrec.poweroff") == "1" {
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	sys := camrec8(stateDir)
	forbidKexec(stateDir)
	if _, err := update(sys, "reboot"); err != nil {
		fail("update", err)
		events.Emit("update", updateEvent{Apply: "reboot", Error: err.Error()})
	}
	console(sys)
}

// stateDir is where camrecd mounts its state partition.
const stateDir = "/state"

func serve(version string) (Health, error) {
	spec := param("camrec.state")
	if spec == "" {
		return Health{}, errors.New("no camrec.state= on the kernel command line")
	}
	dev, disks, err := waitFor(spec, 30*time.Second)
	if err != nil {
		return Health{}, fmt.Errorf("state partition %s: %w", spec, err)
	}
	const state = stateDir
	if err := unix.Mount(dev, state, "ext4", 0, ""); err != nil {
		return Health{}, fmt.Errorf("mount state partition %s: %w", dev, err)
	}
	// The root is read-only: mount points of data volumes live on a tmpfs.
	if err := unix.Mount("tmpfs", "/srv", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return Health{}, fmt.Errorf("mount /srv: %w", err)
	}
	volumes, err := mountVolumes(filepath.Join(state, FstabFile), disks)
	if err != nil {
		return Health{}, err
	}
	h, did, err := Boot(state, version, volumes)
	for _, d := range did {
		fmt.Printf("camrec: %s\n", d)
	}
	if err != nil {
		return Health{}, err
	}
	unix.Sync()
	return h, nil
}

// mountVolumes mounts the data volumes of the state's fstab, read-only,
// and returns the UUIDs of those mounted. A volume that cannot be mounted is reported and
// left out: its segments then count as missing.
func mountVolumes(path string, disks []inventory.Disk) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	entries, err := fstab.Parse(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	var uuids []string
	for _, e := range entries {
		dev, err := inventory.Find(disks, e.Spec)
		if err != nil {
			fail("volumes", err)
			continue
		}
		fs := inventory.FSOf(disks, dev)
		typ := e.Type
		if typ == "auto" && fs != nil {
			typ = fs.Type
		}
		// This reference appliance only checks its recordings, it never
		// records: it mounts them read-only, without log replay, whatever
		// fstab says (an XFS mounted "ro" still writes to its log), so
		// that tests can hash the data disks after it ran.
		os.MkdirAll(e.Mountpoint, 0o755)
		if err := mountReadOnly(dev, e.Mountpoint, typ); err != nil {
			fail("volumes", fmt.Errorf("mount %s (%s) on %s: %w", e.Spec, dev, e.Mountpoint, err))
			continue
		}
		mounted = append(mounted, mountedVolume{dev: dev, point: e.Mountpoint, typ: typ})
		if fs != nil {
			uuids = append(uuids, fs.UUID)
		}
	}
	return uuids, nil
}

// mountReadOnly mounts a data volume read-only, without log replay.
func mountReadOnly(dev, point, typ string) error {
	opts := map[string]string{"ext4": "noload", "ext3": "noload", "xfs": "norecovery"}[typ]
	return unix.Mount(dev, point, typ, unix.MS_RDONLY, opts)
}

// LegacyMain is camrec 7's /sbin/init as the tests lay it on a v7 root
// (camrec.Options.Init), so that the old system can be booted again, after
// a rollback for instance: it mounts the data volumes of its own
// /etc/fstab read-only, checks every segment of its v1 index and reports
// its health as camrec 8 does, under the version /etc/camrec/version
// names.
func LegacyMain() {
	if err := sysinit.MountPseudo(); err != nil {
		fail("mount", err)
	}
	r, err := legacy()
	if err != nil {
		fail("camrec 7", err)
		halt()
	}
	fmt.Printf("camrec %s: %d cameras, %d segments indexed, %d missing, %d bytes, volumes %v\n",
		r.Version, r.Cameras, r.SegmentsIndexed, r.SegmentsMissing, r.Bytes, r.Volumes)
	events.Emit("health", r)
	// A vendor who copied passeur onto the box enrolled it in
	// /etc/passeur: the same update service as camrec 8's.
	if _, err := update(camrec7, "reboot"); err != nil {
		fail("update", err)
		events.Emit("update", updateEvent{Apply: "reboot", Error: err.Error()})
	}
	console(camrec7)
}

func legacy() (camrec.Report, error) {
	v, err := os.ReadFile(camrec.VersionFile)
	if err != nil {
		return camrec.Report{}, err
	}
	version := strings.TrimPrefix(strings.TrimSpace(string(v)), "camrec ")
	disks, err := scan()
	if err != nil {
		return camrec.Report{}, err
	}
	// Its fstab also names the root, mounted already: only the volumes
	// under /srv are its recordings.
	var data bytes.Buffer
	f, err := os.Open("/etc/fstab")
	if err != nil {
		return camrec.Report{}, err
	}
	entries, err := fstab.Parse(f)
	f.Close()
	if err != nil {
		return camrec.Report{}, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Mountpoint, "/srv/") {
			fstab.Write(&data, []fstab.Entry{e})
		}
	}
	if err := os.WriteFile("/run/data.fstab", data.Bytes(), 0o644); err != nil {
		return camrec.Report{}, err
	}
	volumes, err := mountVolumes("/run/data.fstab", disks)
	if err != nil {
		return camrec.Report{}, err
	}
	cf, err := os.Open(camrec.ConfigV7File)
	if err != nil {
		return camrec.Report{}, err
	}
	c7, err := camrec.ParseConfigV7(cf)
	cf.Close()
	if err != nil {
		return camrec.Report{}, err
	}
	xf, err := os.Open(camrec.IndexV1File)
	if err != nil {
		return camrec.Report{}, err
	}
	segs, err := camrec.ParseIndexV1(xf)
	xf.Close()
	if err != nil {
		return camrec.Report{}, err
	}
	idx := make([]IndexEntry, 0, len(segs))
	for _, s := range segs {
		idx = append(idx, IndexEntry{Camera: s.Camera, Start: s.Start, Path: s.Path, Size: s.Size})
	}
	return Check(version, Config{Site: c7.Site, RetentionDays: c7.RetentionDays, Cameras: c7.Cameras}, idx, volumes), nil
}
