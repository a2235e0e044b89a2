package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/passeur/passeur/qemu"
	"github.com/u-root/mkuimage/cpio"
)

// helloInitramfs builds an initramfs whose /init is tests/internal/helloinit.
func helloInitramfs(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/helloinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build helloinit: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(dir, "hello.cpio.zst")
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
