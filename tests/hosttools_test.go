package tests

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sh runs a host tool and fails the test if it fails.
func sh(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// blankImage creates a sparse file of size bytes.
func blankImage(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// garbageImage fills the first MiBs of a disk with pseudo-random bytes.
func garbageImage(t *testing.T, dir, name string, size int64, seed int64) string {
	t.Helper()
	p := blankImage(t, dir, name, size)
	buf := make([]byte, 4<<20)
	rand.New(rand.NewSource(seed)).Read(buf)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// blkidOf returns what blkid -p says of an image or of the partition at
// offset/size inside it: TYPE, LABEL, UUID.
func blkidOf(t *testing.T, img string, offset, size int64) map[string]string {
	t.Helper()
	args := []string{"-p", "-o", "export"}
	if size > 0 {
		args = append(args, "-O", itoa(offset), "-S", itoa(size))
	}
	out, err := exec.Command("blkid", append(args, img)...).Output()
	m := map[string]string{}
	if err != nil {
		return m // blkid exits 2 when it finds nothing
	}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// sfdiskPartition is one partition of `sfdisk --json`.
type sfdiskPartition struct {
	Start uint64 `json:"start"`
	Size  uint64 `json:"size"`
	Type  string `json:"type"`
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
}

// sfdiskJSON returns sfdisk's view of an image's partition table.
func sfdiskJSON(t *testing.T, img string) (label, id string, parts []sfdiskPartition) {
	t.Helper()
	var d struct {
		PT struct {
			Label      string            `json:"label"`
			ID         string            `json:"id"`
			Partitions []sfdiskPartition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(sh(t, "", "sfdisk", "--json", img)), &d); err != nil {
		t.Fatal(err)
	}
	return d.PT.Label, d.PT.ID, d.PT.Partitions
}
