package tests

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/passeur/passeur/image/netboot"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/fixture"
)

// labBench is a lab's netboot server on the host's loopback: passeur
// serve's handler over a bundle and a repository, its request log kept.
type labBench struct {
	addr string
	mu   sync.Mutex
	log  []string
}

func (l *labBench) requests() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.log, "\n")
}

func serveLab(t *testing.T, bundle, repoDir string) *labBench {
	t.Helper()
	return serveLabFleet(t, bundle, repoDir, nil)
}

// serveLabFleet is serveLab with the fleet's server under /fleet, as
// passeur serve -fleet-db runs it.
func serveLabFleet(t *testing.T, bundle, repoDir string, f http.Handler) *labBench {
	t.Helper()
	lab := &labBench{}
	s := &netboot.Server{Bundle: bundle, Repo: repoDir, Fleet: f, Log: func(f string, a ...any) {
		lab.mu.Lock()
		lab.log = append(lab.log, fmt.Sprintf(f, a...))
		lab.mu.Unlock()
	}}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	lab.addr = l.Addr().String()
	return lab
}

// writeBundle writes the board's netboot bundle for keys, its script
// fetching the kernel and initramfs from the lab server (10.0.2.100).
func writeBundle(t *testing.T, art qemu.Artifacts, keys map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	b := netboot.Bundle{Kernel: art.Kernel, Initramfs: art.Initrd, BoardCmdline: art.Board.Kernel.Cmdline, Keys: keys, Base: "http://10.0.2.100/"}
	if err := netboot.Write(dir, b); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestNetbootInstall boots a blank UEFI machine over the network, as a lab
// does: OVMF runs the NIC's iPXE, which gets the bundle's script by TFTP
// from QEMU's user network (restrict=on) and the kernel and initramfs over
// HTTP from passeur serve's handler on the host's loopback (guestfwd);
// test-long also boots the install under SeaBIOS (legacy PXE). First the
// repository's port is closed: the error is on the console after
// bounded retries with doubling pauses, and no disk changed. Then the
// install: with no key, the release is downloaded into media made in RAM
// and written on the blank disk; v8 boots (kexec, then under OVMF from
// its own disk) and reports a fresh appliance; the other disk is unchanged.
func TestNetbootInstall(t *testing.T) {
	r := camrec8(t)
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	repoDir := publish(t, r)
	keys := map[string]string{"mode": "install", "unattended": "yes", "repo": "http://10.0.2.100/repo"}

	t.Run("unreachable repository", func(t *testing.T) {
		longOnly(t, "image/fetch's host tests bound the retries and their backoff")
		closed, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedAddr := closed.Addr().String()
		closed.Close() // nothing listens there now
		keys := map[string]string{"mode": "install", "unattended": "yes", "repo": "http://10.0.2.100:81/repo"}
		bundle := writeBundle(t, art, keys)
		lab := serveLab(t, bundle, repoDir)
		disks := labDisks(t)
		before := hashes(t, disks)
		vm := netbootVM(t, true, disks, bundle, map[string]string{"10.0.2.100:80": lab.addr, "10.0.2.100:81": closedAddr})
		if _, err := vm.WaitEvent("idle", 3*bootTimeout); err != nil {
			t.Fatal(err)
		}
		vm.Stop()
		run := collect(vm)
		sameHashes(t, "netboot with an unreachable repository", before, hashes(t, disks))
		msg := strings.Join(run.errors, "\n")
		t.Logf("the error: %s", msg)
		if !strings.Contains(msg, "repository http://10.0.2.100:81/repo") {
			t.Errorf("errors %q: want the repository named", msg)
		}
		console := vm.Console()
		for _, pause := range []string{"again in 1s", "again in 2s", "again in 4s", "again in 8s", "again in 16s"} {
			if !strings.Contains(console, pause) {
				t.Errorf("console lacks the retry %q", pause)
			}
		}
		if strings.Contains(console, "again in 32s") {
			t.Error("more retries than the bound")
		}
		if run.event("health") != nil || run.event("journal") != nil {
			t.Error("a run began although the repository was unreachable")
		}
		if reqs := lab.requests(); !strings.Contains(reqs, "GET /vmlinuz") || !strings.Contains(reqs, "GET /initramfs.cpio.zst") {
			t.Errorf("the lab server did not serve the kernel and initramfs:\n%s", reqs)
		}
	})
	if t.Failed() {
		return
	}

	firmwares := []string{"uefi"}
	if os.Getenv("PASSEUR_LONG") != "" {
		firmwares = append(firmwares, "seabios") // a legacy BIOS PXE boot of the same bundle
	}
	for _, fw := range firmwares {
		t.Run("install under "+fw, func(t *testing.T) {
			netbootInstall(t, fw == "uefi", repoDir, keys)
		})
	}
}

// labDisks are a lab machine's disks: a blank system disk and a disk of
// someone else's.
func labDisks(t *testing.T) []qemu.Disk {
	t.Helper()
	dir := t.TempDir()
	sys := qemu.Disk{Path: filepath.Join(dir, "sys.img"), Bus: qemu.VirtioBlk, Serial: "LAB-SYS"}
	other := qemu.Disk{Path: filepath.Join(dir, "other.img"), Bus: qemu.SATA, Serial: "OTHER"}
	if err := fixture.Blank(sys.Path, 512<<20); err != nil {
		t.Fatal(err)
	}
	if err := fixture.Mkfs(other.Path, "ext4", "someone-else", 32<<20); err != nil {
		t.Fatal(err)
	}
	return []qemu.Disk{sys, other}
}

// netbootVM boots disks over the network: iPXE (under OVMF, or SeaBIOS)
// takes the bundle's script by TFTP; fwd reaches the lab's servers.
func netbootVM(t *testing.T, uefi bool, disks []qemu.Disk, bundle string, fwd map[string]string) *qemu.VM {
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	return qemu.Test(t, qemu.Options{Board: art.Board, UEFI: uefi, Disks: disks,
		Netboot: &qemu.Netboot{TFTP: bundle, BootFile: netboot.ScriptFile}, GuestFwd: fwd})
}

// netbootInstall is TestNetbootInstall's install on the lab's disks,
// netbooted with the bundle for keys.
func netbootInstall(t *testing.T, uefi bool, repoDir string, keys map[string]string) {
	art := qemu.BuiltArtifacts(t, "qemu-x86_64")
	disks := labDisks(t)
	sys, other := disks[0], disks[1]
	bundle := writeBundle(t, art, keys)
	lab := serveLab(t, bundle, repoDir)
	otherSum := fileSHA(t, other.Path)
	m := finished(t, netbootVM(t, uefi, disks, bundle, map[string]string{"10.0.2.100:80": lab.addr}))
	if got := m.healthy(t); got.Product != "camrec" || got.Version != "8.0.0" || !got.OK || len(got.Volumes) != 0 || got.SegmentsIndexed != 0 {
		t.Errorf("health report after kexec: %+v, want a fresh camrec 8.0.0", got)
	}
	for _, want := range []string{"boot.ipxe", "http://10.0.2.100/vmlinuz", "http://10.0.2.100/initramfs.cpio.zst"} {
		if uefi && !strings.Contains(m.console, want) { // SeaBIOS's iPXE writes to the screen only
			t.Errorf("console lacks iPXE's %q", want)
		}
	}
	var media struct {
		Device string
		RAM    bool
	}
	m.decode(t, "media", &media)
	if !media.RAM || !strings.HasPrefix(media.Device, "/dev/loop") {
		t.Errorf("media event %+v: want media made in RAM", media)
	}
	var dl downloadEvent
	m.decode(t, "download", &dl)
	if dl.Release != "releases/camrec-8.0.0" || dl.Files != 4 {
		t.Errorf("download event %+v", dl)
	}
	reqs := lab.requests()
	stored := func(name string) string {
		return "GET /repo/targets/camrec/8.0.0/" + fileSHA(t, filepath.Join(camrec8(t).dir, name)) + "." + name
	}
	for _, want := range []string{"GET /vmlinuz", "GET /initramfs.cpio.zst", "GET /repo/metadata/timestamp.json",
		stored("manifest.json.minisig"), stored("esp.img.zst"), stored("root.img.zst")} {
		if !strings.Contains(reqs, want) {
			t.Errorf("the lab server saw no %q:\n%s", want, reqs)
		}
	}
	if fileSHA(t, other.Path) != otherSum {
		t.Error("the disk holding someone else's filesystem changed")
	}
	out, err := fixture.Run("", "sfdisk", "-d", sys.Path)
	if err != nil || !strings.Contains(out, "label: gpt") {
		t.Errorf("the system disk after the install: %v\n%s", err, out)
	}
	again := bootV8(t, []qemu.Disk{sys, other})
	if again.Product != "camrec" || again.Version != "8.0.0" || !again.OK || len(again.Volumes) != 0 {
		t.Errorf("health report under UEFI: %+v", again)
	}
}
