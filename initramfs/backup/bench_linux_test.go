package backup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBackupVsCp backs up a tree (four 32 MiB files and 500 of
// 16 KiB) to a loop-mounted FAT32 image, and copies the same tree there
// with `cp -r` then `sync`, in the same run: the ratio is what counts.
// Where the host kernel cannot mount vfat (a container), both go to the
// same folder of the host's filesystem instead, and the log says so.
func BenchmarkBackupVsCp(b *testing.B) {
	tmp := b.TempDir()
	src := filepath.Join(tmp, "root")
	var total int64
	for i := range 4 {
		p := filepath.Join(src, "etc/camrec/media", fmt.Sprintf("clip%d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := make([]byte, 32<<20)
		for j := range data {
			data[j] = byte(j*7 + i)
		}
		os.WriteFile(p, data, 0o644)
		total += int64(len(data))
	}
	for i := range 500 {
		p := filepath.Join(src, "etc/camrec/cams", fmt.Sprintf("cam%03d.conf", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, make([]byte, 16<<10), 0o644)
		total += 16 << 10
	}
	img, mnt := filepath.Join(tmp, "key.img"), filepath.Join(tmp, "mnt")
	os.MkdirAll(mnt, 0o755)
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	f, _ := os.Create(img)
	f.Truncate(1 << 30)
	f.Close()
	run("mkfs.vfat", "-F", "32", img)
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		b.Logf("no FAT32 loop mount here (%v: %s): both write to the host's filesystem", err, out)
	} else {
		defer run("umount", mnt)
	}
	items, _, err := Collect(src, []string{"/etc/camrec"}, OriginSystem)
	if err != nil {
		b.Fatal(err)
	}
	var tb, tc time.Duration
	b.ResetTimer()
	for range b.N {
		run("sync")
		t0 := time.Now()
		if _, err := Write(filepath.Join(mnt, "Backup"), Manifest{}, items, Options{}); err != nil {
			b.Fatal(err)
		}
		run("sync")
		tb += time.Since(t0)
		os.RemoveAll(filepath.Join(mnt, "Backup"))
		run("sync")
		t0 = time.Now()
		run("cp", "-r", src, filepath.Join(mnt, "cp"))
		run("sync")
		tc += time.Since(t0)
		os.RemoveAll(filepath.Join(mnt, "cp"))
	}
	mib := float64(total) / (1 << 20) * float64(b.N)
	b.ReportMetric(mib/tb.Seconds(), "backup-MiB/s")
	b.ReportMetric(mib/tc.Seconds(), "cp-MiB/s")
	b.ReportMetric(tb.Seconds()/tc.Seconds(), "time-ratio")
}
