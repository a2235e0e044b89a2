package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/qemu"
	"github.com/passeur/passeur/qemu/fixture"
	"github.com/u-root/mkuimage/cpio"
)

// helloInitramfs builds an initramfs whose /init is tests/internal/helloinit.
func helloInitramfs(b *testing.B) string { return initArchive(b, "./internal/helloinit") }

// initArchive builds an initramfs archive whose /init is the Go command
// pkg: alone, or laid over another archive, whose /init it then replaces.
func initArchive(b *testing.B, pkg string) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build helloinit: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(dir, "init.cpio.zst")
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zw, _ := zstd.NewWriter(f, zstd.WithWindowSize(8<<20))
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecordsAndDirs(w, []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile("init", string(data), 0o755),
	}); err != nil {
		b.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return img
}

// bootUptime boots initrd and returns the guest uptime reported by the
// event typ, and the wall time QEMU ran.
func bootUptime(b *testing.B, a qemu.Artifacts, initrd, cmdline, typ string) (float64, time.Duration) {
	b.Helper()
	start := time.Now()
	vm := qemu.Test(b, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: initrd, Cmdline: cmdline})
	ev, err := vm.WaitEvent(typ, bootTimeout)
	if err != nil {
		b.Fatal(err)
	}
	var r struct{ Uptime float64 }
	if err := ev.Decode(&r); err != nil {
		b.Fatal(err)
	}
	if err := vm.Wait(exitTimeout); err != nil {
		b.Fatal(err)
	}
	return r.Uptime, time.Since(start)
}

// BenchmarkBootToReady measures, on the same kernel and QEMU, the guest
// uptime at which the agent emits "ready" (modules loaded, block devices
// settled) and at which a hello-world Go /init prints. Their ratio is the
// boot-time benchmark: ./build.sh bench.
func BenchmarkBootToReady(b *testing.B) {
	a := qemu.BuiltArtifacts(b, "qemu-x86_64")
	hello := helloInitramfs(b)
	var agent, hi float64
	var agentWall, helloWall time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		up, wall := bootUptime(b, a, a.Initrd, "passeur.mode=poweroff", "ready")
		agent, agentWall = agent+up, agentWall+wall
		up, wall = bootUptime(b, a, hello, "", "hello")
		hi, helloWall = hi+up, helloWall+wall
	}
	n := float64(b.N)
	b.ReportMetric(agent/n, "ready-uptime-s")
	b.ReportMetric(hi/n, "hello-uptime-s")
	b.ReportMetric(agent/hi, "ratio")
	b.ReportMetric(agentWall.Seconds()/n, "agent-wall-s")
	b.ReportMetric(helloWall.Seconds()/n, "hello-wall-s")
}

// BenchmarkBackupToKeyVsCp runs, in the guest, passeur's backup of a tree
// (four 16 MiB files and 500 of 16 KiB) to a FAT32 USB key against the
// rescue system's `cp -r` of the same tree to the same mount
// (tests/internal/benchbackup laid over the rescue image).
func BenchmarkBackupToKeyVsCp(b *testing.B) {
	a := qemu.BuiltArtifacts(b, "qemu-x86_64")
	base, err := os.ReadFile(a.Initrd)
	if err != nil {
		b.Fatal(err)
	}
	over, err := os.ReadFile(initArchive(b, "./internal/benchbackup"))
	if err != nil {
		b.Fatal(err)
	}
	initrd := filepath.Join(b.TempDir(), "bench.cpio.zst")
	os.WriteFile(initrd, append(base, over...), 0o644)
	var r struct{ MiB, Backup_s, Cp_s float64 }
	var sum struct{ mib, backup, cp float64 }
	b.ResetTimer()
	for range b.N {
		key := filepath.Join(b.TempDir(), "key.img")
		if err := fixture.Key(key, 512<<20, 32, nil, nil); err != nil {
			b.Fatal(err)
		}
		vm := qemu.Test(b, qemu.Options{Board: a.Board, Kernel: a.Kernel, Initrd: initrd, MemoryMiB: 1536,
			Disks: []qemu.Disk{{Path: key, Bus: qemu.USB, Serial: "PASSEUR-KEY"}}})
		ev, err := vm.WaitEvent("bench", 3*bootTimeout)
		if err != nil {
			b.Fatal(err)
		}
		ev.Decode(&r)
		vm.Stop()
		sum.mib, sum.backup, sum.cp = sum.mib+r.MiB, sum.backup+r.Backup_s, sum.cp+r.Cp_s
	}
	b.ReportMetric(sum.mib/sum.backup, "backup-MiB/s")
	b.ReportMetric(sum.mib/sum.cp, "cp-MiB/s")
	b.ReportMetric(sum.backup/sum.cp, "time-ratio")
}
