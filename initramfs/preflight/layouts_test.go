package preflight

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/version"
	"github.com/passeur/passeur/initramfs/inventory"
	"github.com/passeur/passeur/initramfs/migrate"
	"github.com/passeur/passeur/initramfs/ptable"
	"github.com/passeur/passeur/initramfs/roles"
)

var updateGoldens = flag.Bool("update", false, "rewrite testdata/layouts/*.golden from what the planner does")

const corpus = "testdata/layouts"

// layoutCase is one disk of the corpus, as testdata/layouts/cases.json
// describes it: what the old system on it mounts.
type layoutCase struct {
	Name string `json:"name"`
	// Layout names the sfdisk script laid on the disk: NAME.sfdisk when empty.
	Layout string `json:"layout,omitempty"`
	Size   string `json:"size"`
	// Release varies camrec 8's layout: "" gives it the fallback "dos",
	// "gpt-only" none, "no-keep" drops its keep partition.
	Release string `json:"release,omitempty"`
	// Root is the old root's partition number; 0 when it is elsewhere.
	Root int         `json:"root,omitempty"`
	Data []dataMount `json:"data,omitempty"`
	Why  string      `json:"why"`
}

// dataMount is a partition the old fstab mounts as data.
type dataMount struct {
	Number     int    `json:"number"`
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fstype"`
	Label      string `json:"label,omitempty"`
}

// TestLayoutCorpus places camrec 8's layout on each disk of the corpus
// (real layouts laid by sfdisk, read back as the inventory reads a disk)
// and compares the plan or the refusal with NAME.golden. Each plan's
// table is then written, onto a blank disk and over the old one, and read
// back by sfdisk; the kept partitions' bytes must not change.
func TestLayoutCorpus(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed (build.sh installs it)")
	}
	b, err := os.ReadFile(filepath.Join(corpus, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []layoutCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	laid := map[string]bool{}
	for _, c := range cases {
		laid[cmp.Or(c.Layout, c.Name)+".sfdisk"] = true
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			testLayoutCase(t, c)
		})
	}
	scripts, _ := filepath.Glob(filepath.Join(corpus, "*.sfdisk"))
	for _, s := range scripts {
		if !laid[filepath.Base(s)] {
			t.Errorf("%s is in no case of cases.json", s)
		}
	}
}

func testLayoutCase(t *testing.T, c layoutCase) {
	script, err := os.ReadFile(filepath.Join(corpus, cmp.Or(c.Layout, c.Name)+".sfdisk"))
	if err != nil {
		t.Fatal(err)
	}
	sectorSize := scriptSectorSize(script)
	if sectorSize != 512 && os.Geteuid() != 0 {
		t.Skipf("%d-byte sectors need a loop device, made by root only", sectorSize)
	}
	size, err := release.ParseSize(c.Size)
	if err != nil {
		t.Fatal(err)
	}
	img := blankImage(t, size.Bytes)
	var old sfdiskTable
	onDevice(t, img, sectorSize, func(dev string) {
		if _, err := runSfdisk(pinIDs(script, c.Name), "-q", "--no-reread", "--no-tell-kernel", dev); err != nil {
			t.Fatal(err)
		}
		old = dumpTable(t, dev)
	})
	sys := assignment(t, c, img, size.Bytes, old)
	m := caseRelease(t, c.Release)

	pl, err := Layout(m, sys)
	var job *migrate.Job
	if err == nil {
		job, err = migrate.NewJob("migrate", "", "", m, sys.Disk, pl, sys.Volumes, "layouts-test")
		if err != nil {
			t.Fatalf("preflight placed the layout but its job fails: %v", err)
		}
	}
	checkGolden(t, c.Name, render(c, m, sys, pl, job, err))
	if job == nil {
		return
	}
	tab, err := job.PTable()
	if err != nil {
		t.Fatal(err)
	}
	im, err := job.TableImage()
	if err != nil {
		t.Fatal(err)
	}
	checkDataKept(t, sys, job, im)

	blank := blankImage(t, size.Bytes)
	writeImage(t, blank, im)
	sameAsJob(t, blank, sectorSize, tab)

	writeOverOld(t, img, job, im, c.Name)
	sameAsJob(t, img, sectorSize, tab)

	t.Run("again", func(t *testing.T) { migrateAgain(t, c, img, size.Bytes, sectorSize, m, sys, job) })
}

// migrateAgain plans, on the disk a migration left (img, holding job's
// table), the next one: camrec 8.0.0 as roles find it, its read-only root
// and the state laid over it, to 8.1.0 with the same layout. Nothing may
// move: the job is the first one's, partition for partition, the data
// kept where they are and their bytes untouched when the table is written
// again.
func migrateAgain(t *testing.T, c layoutCase, img string, size int64, sectorSize int, m *release.Manifest, first *roles.Assignment, job *migrate.Job) {
	var now sfdiskTable
	onDevice(t, img, sectorSize, func(dev string) { now = dumpTable(t, dev) })
	kv := kernelView(size, now)
	d, err := inventory.Describe(kv, openImage(img, kv), "vda")
	if err != nil || len(d.Errors) > 0 {
		t.Fatalf("inventory of the migrated disk: %v %v", err, d.Errors)
	}
	at := func(start int64) string {
		for _, p := range d.Partitions {
			if p.Start == start {
				return p.Path
			}
		}
		return ""
	}
	sys := &roles.Assignment{Disk: d, Role: roles.System, Product: m.Product, Version: m.Version.String()}
	for _, e := range job.Extents {
		switch e.Name {
		case "root":
			sys.Root = at(e.Start)
		case "state":
			sys.State = at(e.Start)
		}
	}
	if sys.Root == "" || sys.State == "" {
		t.Fatalf("the migrated disk has no root or state where the job put them: %+v", d.Partitions)
	}
	old := map[string]inventory.Partition{}
	for _, p := range first.Disk.Partitions {
		old[p.Path] = p
	}
	for _, v := range first.Volumes {
		v.Device = at(old[v.Device].Start)
		if v.Device == "" {
			t.Fatalf("data volume %s is not where it was", v.Mountpoint)
		}
		sys.Volumes = append(sys.Volumes, v)
	}
	next := *m
	if next.Version, err = version.Parse("8.1.0"); err != nil {
		t.Fatal(err)
	}
	pl, err := Layout(&next, sys)
	if err != nil {
		t.Fatalf("8.0.0 → 8.1.0 refused on the disk 7.14.0.3 → 8.0.0 left: %v", err)
	}
	again, err := migrate.NewJob("migrate", "", "", &next, sys.Disk, pl, sys.Volumes, "layouts-test-again")
	if err != nil {
		t.Fatalf("8.0.0 → 8.1.0: %v", err)
	}
	if again.Table != job.Table || !slices.Equal(again.Numbers, job.Numbers) || len(again.Extents) != len(job.Extents) {
		t.Fatalf("8.0.0 → 8.1.0 makes a %s table %v, 7.14.0.3 → 8.0.0 made %s %v", again.Table, again.Numbers, job.Table, job.Numbers)
	}
	for i, e := range again.Extents {
		w := job.Extents[i]
		if e.Name != w.Name || e.Role != w.Role || e.Start != w.Start || e.Bytes != w.Bytes {
			t.Errorf("8.0.0 → 8.1.0 moves %s: %s %d+%d, was %s %d+%d", w.Name, e.Role, e.Start, e.Bytes, w.Role, w.Start, w.Bytes)
		}
	}
	im, err := again.TableImage()
	if err != nil {
		t.Fatal(err)
	}
	checkDataKept(t, sys, again, im)
	tab, err := again.PTable()
	if err != nil {
		t.Fatal(err)
	}
	writeOverOld(t, img, again, im, c.Name+" again")
	sameAsJob(t, img, sectorSize, tab)
}

// scriptSectorSize is the sector size a script's header asks for.
func scriptSectorSize(script []byte) int {
	for _, line := range strings.Split(string(script), "\n") {
		if v, ok := strings.CutPrefix(line, "sector-size:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return 512
}

// pinIDs fixes the identifiers a script leaves to sfdisk, which makes them
// up at random: the disk identifier and each GPT partition's UUID, derived
// from the case's name so that goldens are stable.
func pinIDs(script []byte, name string) []byte {
	s := string(script)
	gpt := strings.Contains(s, "label: gpt")
	var out []string
	n := 0
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "label:") && !strings.Contains(s, "label-id:"):
			id := release.StableUUID(name + "\x00disk")
			if !gpt {
				id = "0x" + id[:8]
			}
			out = append(out, line, "label-id: "+id)
			continue
		case strings.HasPrefix(line, "start="):
			n++
			if gpt && !strings.Contains(line, "uuid=") {
				line += ", uuid=" + release.StableUUID(fmt.Sprintf("%s\x00%d", name, n))
			}
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n"))
}

func blankImage(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	return img
}

// onDevice gives f img as a disk of sectorSize-byte logical sectors: the
// file itself for 512, else a loop device, detached when f returns so that
// what f wrote is in the file.
func onDevice(t *testing.T, img string, sectorSize int, f func(dev string)) {
	t.Helper()
	if sectorSize == 512 {
		f(img)
		return
	}
	out, err := exec.Command("losetup", "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	}()
	f(dev)
}

func runSfdisk(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("sfdisk", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("sfdisk %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out) + stderr.String(), nil
}

// sfdiskTable is what sfdisk --json says of a disk.
type sfdiskTable struct {
	Label      string            `json:"label"`
	ID         string            `json:"id"`
	SectorSize int               `json:"sectorsize"`
	Partitions []sfdiskPartition `json:"partitions"`
}

type sfdiskPartition struct {
	Node     string `json:"node"`
	Number   int    `json:"-"` // from the node's name
	Start    uint64 `json:"start"`
	Size     uint64 `json:"size"`
	Type     string `json:"type"`
	UUID     string `json:"uuid"`
	Name     string `json:"name"`
	Bootable bool   `json:"bootable"`
}

func dumpTable(t *testing.T, dev string) sfdiskTable {
	t.Helper()
	out, err := runSfdisk(nil, "--json", dev)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Table sfdiskTable `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("sfdisk --json %s: %v\n%s", dev, err, out)
	}
	for i, p := range d.Table.Partitions {
		n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(p.Node, dev), "p"))
		if err != nil {
			t.Fatalf("sfdisk --json %s: partition node %s", dev, p.Node)
		}
		d.Table.Partitions[i].Number = n
	}
	return d.Table
}

// kernelView is the /sys of a disk "vda" holding the table sfdisk dumped,
// as the kernel shows it: every partition sfdisk lists, logical ones
// included; starts and sizes in 512-byte units whatever the sector size;
// an extended partition cut to its first sectors (block/partitions/msdos.c).
func kernelView(size int64, d sfdiskTable) inventory.Capture {
	c := inventory.Capture{
		"file:block/vda/size":                     fmt.Sprintf("%d\n", size/512),
		"file:block/vda/queue/logical_block_size": fmt.Sprintf("%d\n", d.SectorSize),
	}
	units := uint64(d.SectorSize / 512)
	var names []string
	for _, p := range d.Partitions {
		n := fmt.Sprintf("vda%d", p.Number)
		names = append(names, n)
		sectors := p.Size * units
		if d.Label == "dos" && (p.Type == "5" || p.Type == "f" || p.Type == "85") {
			sectors = min(sectors, max(units, 2))
		}
		c["file:block/vda/"+n+"/partition"] = fmt.Sprintf("%d\n", p.Number)
		c["file:block/vda/"+n+"/start"] = fmt.Sprintf("%d\n", p.Start*units)
		c["file:block/vda/"+n+"/size"] = fmt.Sprintf("%d\n", sectors)
	}
	c["dir:block/vda"] = strings.Join(names, "\n") + "\n"
	return c
}

// openImage opens the disk "vda" as img, and its partitions as the
// extents sys gives them.
func openImage(img string, sys inventory.Capture) inventory.Opener {
	return func(name string) (inventory.Device, error) {
		f, err := os.Open(img)
		if err != nil {
			return nil, err
		}
		if name == "vda" {
			return f, nil
		}
		start, err1 := strconv.ParseInt(strings.TrimSpace(sys["file:block/vda/"+name+"/start"]), 10, 64)
		size, err2 := strconv.ParseInt(strings.TrimSpace(sys["file:block/vda/"+name+"/size"]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			f.Close()
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		return struct {
			*io.SectionReader
			io.Closer
		}{io.NewSectionReader(f, start*512, size*512), f}, nil
	}
}

// assignment is the system disk as roles would give it to preflight: the
// inventory of the laid image, its old root, the data volumes its fstab
// mounts.
func assignment(t *testing.T, c layoutCase, img string, size int64, old sfdiskTable) *roles.Assignment {
	t.Helper()
	sys := kernelView(size, old)
	d, err := inventory.Describe(sys, openImage(img, sys), "vda")
	if err != nil || len(d.Errors) > 0 {
		t.Fatalf("inventory of %s: %v %v", img, err, d.Errors)
	}
	a := &roles.Assignment{Disk: d, Role: roles.System, Product: "camrec", Version: "7.14.0.3"}
	if c.Root > 0 {
		a.Root = fmt.Sprintf("/dev/vda%d", c.Root)
	}
	for _, v := range c.Data {
		dev := fmt.Sprintf("/dev/vda%d", v.Number)
		if !slices.ContainsFunc(d.Partitions, func(p inventory.Partition) bool { return p.Path == dev }) {
			t.Fatalf("cases.json: %s has no partition %d", c.Name, v.Number)
		}
		uuid := release.StableUUID(fmt.Sprintf("%s\x00fs %d", c.Name, v.Number))
		a.Volumes = append(a.Volumes, roles.Volume{Device: dev, Spec: "UUID=" + uuid, Mountpoint: v.Mountpoint,
			FSType: v.FSType, UUID: uuid, Label: v.Label})
	}
	return a
}

// caseRelease is camrec 8's manifest as the case varies it.
func caseRelease(t *testing.T, variant string) *release.Manifest {
	t.Helper()
	m := manifest(t)
	switch variant {
	case "":
		m.Layout.Fallback = "dos"
	case "gpt-only":
		m.Layout.Fallback = ""
	case "no-keep":
		m.Layout.Fallback = "dos"
		m.Layout.Partitions = slices.DeleteFunc(slices.Clone(m.Layout.Partitions), func(p release.Partition) bool {
			return p.Role == release.RoleKeep
		})
	default:
		t.Fatalf("cases.json: release %q (want \"\", gpt-only or no-keep)", variant)
	}
	return m
}

// render says what the planner made of a case: the old disk, then the
// refusal with the sentinels it wraps, or the plan with the job's numbers,
// PARTUUIDs and what became of the kept partitions' identity.
func render(c layoutCase, m *release.Manifest, sys *roles.Assignment, pl release.Placement, job *migrate.Job, err error) string {
	var b strings.Builder
	d := sys.Disk
	fmt.Fprintf(&b, "%s\n\nold disk: %s, %d-byte sectors, %s %s\n", c.Why, bytesAt(d.Size), d.SectorSize, d.Table.Type, d.Table.ID)
	for _, p := range d.Partitions {
		role := ""
		if p.Path == sys.Root {
			role = "  <- root"
		}
		for _, v := range sys.Volumes {
			if v.Device == p.Path {
				role = fmt.Sprintf("  <- data %s (%s, label %q)", v.Mountpoint, v.FSType, v.Label)
			}
		}
		fmt.Fprintf(&b, "  #%-2d start %-22s size %-22s type %s partuuid %q name %q%s\n",
			p.Number, bytesAt(p.Start), bytesAt(p.Size), p.PartType, p.PartUUID, p.PartLabel, role)
	}
	fmt.Fprintf(&b, "release: %s %s, table %s, fallback %q:", m.Product, m.Version, m.Layout.Table, m.Layout.Fallback)
	for _, p := range m.Layout.Partitions {
		fmt.Fprintf(&b, " %s %s %s;", p.Name, p.Role, p.Size)
	}
	b.WriteString("\n\n")
	if err != nil {
		fmt.Fprintf(&b, "refused [%s]:\n  %v\n", sentinels(err), err)
		return b.String()
	}
	fmt.Fprintf(&b, "plan: %s table, disk id %s\n", pl.Table, job.DiskGUID)
	for i, e := range job.Extents {
		fmt.Fprintf(&b, "  #%-2d %-8s %-8s start %-22s size %-22s partuuid %s\n",
			job.Numbers[i], e.Name, e.Role, bytesAt(e.Start), bytesAt(e.Bytes), e.UUID)
	}
	for _, n := range job.Identity {
		fmt.Fprintf(&b, "identity: %s\n", n)
	}
	olds := make([]string, 0, len(job.BootUUIDs))
	for o := range job.BootUUIDs {
		olds = append(olds, o)
	}
	slices.Sort(olds)
	for _, o := range olds {
		fmt.Fprintf(&b, "boot entry: PARTUUID %s becomes %s\n", o, job.BootUUIDs[o])
	}
	return b.String()
}

func bytesAt(n int64) string { return fmt.Sprintf("%d (%s)", n, inventory.HumanSize(n)) }

// sentinels names the errors a caller may branch on that err wraps.
func sentinels(err error) string {
	var names []string
	for _, s := range []struct {
		name string
		err  error
	}{
		{"release.ErrTooLarge", release.ErrTooLarge},
		{"release.ErrLayout", release.ErrLayout},
		{"preflight.ErrDataInTheWay", ErrDataInTheWay},
		{"ptable.ErrTable", ptable.ErrTable},
	} {
		if errors.Is(err, s.err) {
			names = append(names, s.name)
		}
	}
	if names == nil {
		return "no sentinel"
	}
	return strings.Join(names, ", ")
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(corpus, name+".golden")
	if *updateGoldens {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./initramfs/preflight -run TestLayoutCorpus -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (-want +got):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines that differ, position by position.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		wl, gl := "", ""
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "-%s\n+%s\n", wl, gl)
		}
	}
	return b.String()
}

// checkDataKept checks what a plan must do whatever its golden says: every
// data partition the old system mounts is kept exactly where it is, and
// neither a new partition nor a byte of the new table lies over one.
func checkDataKept(t *testing.T, sys *roles.Assignment, job *migrate.Job, im ptable.Image) {
	t.Helper()
	for _, v := range sys.Volumes {
		i := slices.IndexFunc(sys.Disk.Partitions, func(p inventory.Partition) bool { return p.Path == v.Device })
		p := sys.Disk.Partitions[i]
		overlaps := func(start, end int64) bool { return start < p.Start+p.Size && p.Start < end }
		kept := false
		for _, e := range job.Extents {
			switch {
			case e.Role == release.RoleKeep && e.Start == p.Start && e.Bytes == p.Size:
				kept = true
			case overlaps(e.Start, e.Start+e.Bytes):
				t.Errorf("new partition %s (%s) lies over data partition %s", e.Name, e.Role, p.Path)
			}
		}
		if !kept {
			t.Errorf("data partition %s (%s) is not kept in place", p.Path, v.Mountpoint)
		}
		for _, r := range im.Ranges() {
			if overlaps(r[0], r[1]) {
				t.Errorf("the new table writes bytes %d-%d, in data partition %s", r[0], r[1], p.Path)
			}
		}
	}
}

func writeImage(t *testing.T, img string, im ptable.Image) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := im.WriteTo(f); err != nil {
		t.Fatal(err)
	}
}

// writeOverOld fills the first and last MiB of each kept partition of the
// old disk with random bytes, writes the new table over the disk, and
// checks that none of those bytes changed.
func writeOverOld(t *testing.T, img string, job *migrate.Job, im ptable.Image, seed string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.NewChaCha8(sha256.Sum256([]byte(seed)))
	type mark struct {
		name string
		off  int64
		data []byte
	}
	var marks []mark
	for _, e := range job.Extents {
		if e.Role != release.RoleKeep {
			continue
		}
		n := min(e.Bytes, 1<<20)
		for _, off := range []int64{e.Start, e.Start + e.Bytes - n} {
			b := make([]byte, n)
			rng.Read(b)
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
			marks = append(marks, mark{e.Name, off, b})
		}
	}
	if err := im.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	for _, m := range marks {
		got := make([]byte, len(m.data))
		if _, err := f.ReadAt(got, m.off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, m.data) {
			t.Errorf("kept partition %s: bytes %d-%d changed when the table was written", m.name, m.off, m.off+int64(len(got)))
		}
	}
}

// sameAsJob checks that sfdisk verifies the table on img clean and reads
// it as the job means it: type, identifier, and each partition's number,
// start, size, type, flag, and on a GPT its PARTUUID and name.
func sameAsJob(t *testing.T, img string, sectorSize int, tab *ptable.Table) {
	t.Helper()
	onDevice(t, img, sectorSize, func(dev string) {
		if out, err := runSfdisk(nil, "--verify", dev); err != nil || strings.Contains(strings.ToLower(out), "warning") {
			t.Errorf("sfdisk --verify: %v\n%s", err, out)
		}
		got := dumpTable(t, dev)
		if got.Label != tab.Type || !strings.EqualFold(strings.TrimPrefix(got.ID, "0x"), tab.ID) || got.SectorSize != sectorSize {
			t.Errorf("sfdisk reads a %s table %s in %d-byte sectors, the job wrote %s %s in %d", got.Label, got.ID, got.SectorSize, tab.Type, tab.ID, sectorSize)
		}
		if len(got.Partitions) != len(tab.Partitions) {
			t.Errorf("sfdisk reads %d partitions, the job wrote %d:\n%+v", len(got.Partitions), len(tab.Partitions), got.Partitions)
		}
		for _, w := range tab.Partitions {
			i := slices.IndexFunc(got.Partitions, func(p sfdiskPartition) bool { return p.Number == w.Number })
			if i < 0 {
				t.Errorf("sfdisk does not read partition %d", w.Number)
				continue
			}
			g := got.Partitions[i]
			typ := strings.ToLower(w.Type)
			if tab.Type == "dos" {
				typ = strings.TrimLeft(typ, "0")
			}
			same := g.Start == w.Start && g.Size == w.Sectors && strings.ToLower(g.Type) == typ && g.Bootable == w.Bootable
			if tab.Type == "gpt" {
				same = same && strings.EqualFold(g.UUID, w.UUID) && g.Name == w.Name
			}
			if !same {
				t.Errorf("partition %d: sfdisk reads %+v, the job wrote %+v", w.Number, g, w)
			}
		}
	})
}
