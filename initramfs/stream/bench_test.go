package stream

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrite1GiB writes a 1 GiB zstd image to a file-backed disk with
// its hash checked as it streams, against `zstd -dc | dd bs=4M
// oflag=direct` then `sha256sum` of the written bytes, in the same run; and
// re-installs it with SkipUnchanged against a full write.
func BenchmarkWrite1GiB(b *testing.B) {
	for _, tool := range []string{"zstd", "dd", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skip(tool + " not installed")
		}
	}
	dir := b.TempDir()
	a := artifact(b, dir, image(1<<30, 3))
	const off = 1 << 20
	d := filepath.Join(dir, "disk.img")
	f, err := os.Create(d)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	f.Truncate(off + 1<<30 + 1<<20)
	write := func(o Options) Result {
		rc, err := a.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer rc.Close()
		r, err := Write(f, off, 1<<30, rc, o)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	var ours, oursRB, theirs, skip, full time.Duration
	b.ResetTimer()
	for range b.N {
		f.Truncate(0)
		f.Truncate(off + 1<<30 + 1<<20)
		t0 := time.Now()
		write(Options{})
		ours += time.Since(t0)

		f.Truncate(0)
		f.Truncate(off + 1<<30 + 1<<20)
		t0 = time.Now()
		write(Options{ReadBack: true, WantSHA256: a.SHA256})
		oursRB += time.Since(t0)

		f.Truncate(0)
		f.Truncate(off + 1<<30 + 1<<20)
		t0 = time.Now()
		sh := fmt.Sprintf(`zstd -dc %q | dd of=%q bs=4M iflag=fullblock oflag=direct,seek_bytes seek=%d conv=notrunc status=none && dd if=%q bs=4M iflag=skip_bytes,count_bytes skip=%d count=%d status=none | sha256sum`,
			filepath.Join(dir, a.File), d, off, d, off, 1<<30)
		out, err := exec.Command("sh", "-c", sh).Output()
		theirs += time.Since(t0)
		if err != nil || string(out[:64]) != a.SHA256 {
			b.Fatalf("zstd | dd | sha256sum: %v %s", err, out)
		}

		t0 = time.Now()
		r := write(Options{SkipUnchanged: true})
		skip += time.Since(t0)
		if r.Written != 0 {
			b.Fatalf("re-install wrote %d bytes", r.Written)
		}
		t0 = time.Now()
		write(Options{})
		full += time.Since(t0)
	}
	mib := 1024 * float64(b.N)
	b.ReportMetric(mib/ours.Seconds(), "stream-MiB/s")
	b.ReportMetric(mib/oursRB.Seconds(), "stream+readback-MiB/s")
	b.ReportMetric(mib/theirs.Seconds(), "zstd|dd|sha256sum-MiB/s")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "time-ratio")
	b.ReportMetric(skip.Seconds()/full.Seconds(), "skip-vs-full-ratio")
}
