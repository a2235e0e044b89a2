package camrec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/passeur/passeur/qemu/fixture"
)

// extract copies size bytes at offset of img into a file of their own.
func extract(t *testing.T, img string, offset, size int64) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "part.fs")
	if _, err := fixture.Run("", "dd", "if="+img, "of="+out, "bs=1M", fmt.Sprintf("skip=%d", offset>>20),
		fmt.Sprintf("count=%d", size>>20), "status=none"); err != nil {
		t.Fatal(err)
	}
	return out
}

// filesystems lists each filesystem of a disk image: whole disk, or each
// partition sfdisk lists.
func filesystems(t *testing.T, img string) []string {
	t.Helper()
	if fixture.Blkid(img, 0, 0)["TYPE"] != "" {
		return []string{img}
	}
	tab, err := fixture.Sfdisk(img)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range tab.Partitions {
		out = append(out, extract(t, img, int64(p.Start)*512, int64(p.Size)*512))
	}
	return out
}

// TestBuildV7 builds each variant with the host's tools and checks it the
// way the vendor's support would: e2fsck, xfs_repair, sfdisk --dump against
// golden files, blkid, and the index read back with debugfs.
func TestBuildV7(t *testing.T) {
	for _, v := range []Variant{VariantA, VariantB, VariantC} {
		t.Run(string(v), func(t *testing.T) {
			dir := t.TempDir()
			a, err := BuildV7(dir, v, Options{Seed: 7, SegmentsPerCamera: 12, SegmentSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			disks := append([]fixture.Disk{a.System}, a.Data...)
			uuids := map[string]string{} // UUID -> type, from blkid
			for i, d := range disks {
				if _, err := os.Stat(d.Path); err != nil {
					t.Fatal(err)
				}
				if d.Content == "partitioned" {
					dump, err := fixture.Run("", "sfdisk", "--dump", d.Path)
					if err != nil {
						t.Fatal(err)
					}
					dump = strings.ReplaceAll(dump, d.Path, "DISK")
					golden(t, fmt.Sprintf("testdata/v7-%s-disk%d.sfdisk", v, i), dump)
				}
				for _, fs := range filesystems(t, d.Path) {
					id := fixture.Blkid(fs, 0, 0)
					uuids[id["UUID"]] = id["TYPE"]
					switch id["TYPE"] {
					case "ext4":
						if out, err := fixture.Run("", "e2fsck", "-fn", fs); err != nil {
							t.Errorf("e2fsck -fn on %s of disk %d: %v\n%s", id["LABEL"], i, err, out)
						}
					case "xfs":
						if out, err := fixture.Run("", "xfs_repair", "-n", "-f", fs); err != nil {
							t.Errorf("xfs_repair -n on %s of disk %d: %v\n%s", id["LABEL"], i, err, out)
						}
					default:
						t.Errorf("disk %d: unexpected filesystem %v", i, id)
					}
					if id["UUID"] == a.RootUUID {
						checkRoot(t, a, fs)
					}
				}
			}
			for _, vol := range a.Volumes {
				if uuids[vol.UUID] != vol.FSType {
					t.Errorf("volume %s: blkid finds UUID %s as %q, want %s", vol.Mountpoint, vol.UUID, uuids[vol.UUID], vol.FSType)
				}
			}
			if uuids[a.RootUUID] != "ext4" {
				t.Errorf("no ext4 root with UUID %s", a.RootUUID)
			}
			var written Report
			if b, err := os.ReadFile(filepath.Join(dir, "expected-health.json")); err != nil || json.Unmarshal(b, &written) != nil ||
				!slices.Equal(written.Volumes, a.Expected.Volumes) || written.SegmentsIndexed != a.Expected.SegmentsIndexed {
				t.Errorf("expected-health.json = %+v (%v), want %+v", written, err, a.Expected)
			}
			want := 3 * 12
			if a.Expected.SegmentsIndexed != want || a.Expected.Bytes != int64(want)*64<<10 || a.Expected.Cameras != 3 ||
				len(a.Expected.Volumes) != len(a.Volumes) || !slices.IsSorted(a.Expected.Volumes) {
				t.Errorf("expected report %+v", a.Expected)
			}
		})
	}
}

// checkRoot reads the v7 root back with debugfs: version, fstab and index.
func checkRoot(t *testing.T, a *Appliance, fs string) {
	t.Helper()
	cat := func(p string) string {
		out, err := fixture.Run("", "debugfs", "-R", "cat "+p, fs)
		if err != nil {
			t.Fatal(err)
		}
		// debugfs prints its banner on stderr, merged here: keep from the content on.
		if i := strings.Index(out, "\n"); strings.HasPrefix(out, "debugfs ") && i >= 0 {
			out = out[i+1:]
		}
		return out
	}
	if got := cat(VersionFile); got != "camrec "+a.Version+"\n" {
		t.Errorf("version file = %q", got)
	}
	fstab := cat("/etc/fstab")
	for _, v := range a.Volumes {
		if !strings.Contains(fstab, v.FstabSpec+" "+v.Mountpoint+" "+v.FSType) {
			t.Errorf("fstab lacks %s at %s:\n%s", v.FstabSpec, v.Mountpoint, fstab)
		}
	}
	var want bytes.Buffer
	WriteIndexV1(&want, a.Segments)
	if got := cat(IndexV1File); got != want.String() {
		t.Errorf("index in the image differs from the segments built (%d vs %d bytes)", len(got), want.Len())
	}
	segs, err := ParseIndexV1(strings.NewReader(cat(IndexV1File)))
	if err != nil || len(segs) != len(a.Segments) {
		t.Errorf("index parses to %d segments, %v; want %d", len(segs), err, len(a.Segments))
	}
}

// golden compares got with a file under testdata; PASSEUR_UPDATE_TESTDATA=1
// rewrites it.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if os.Getenv("PASSEUR_UPDATE_TESTDATA") != "" {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (PASSEUR_UPDATE_TESTDATA=1 writes it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
