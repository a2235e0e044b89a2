package identity

import (
	"errors"
	"testing"

	"github.com/passeur/passeur/initramfs/inventory"
)

func TestMatchFind(t *testing.T) {
	gpt := func(id string) *inventory.Table { return &inventory.Table{Type: "gpt", ID: id} }
	a := inventory.Disk{Path: "/dev/vda", Serial: "S1", Size: 1 << 30, Table: gpt("AAAA")}
	twin := inventory.Disk{Path: "/dev/vdb", Serial: "S2", Size: 1 << 30, Table: gpt("AAAA")} // a clone's table, another serial
	anon := inventory.Disk{Path: "/dev/vdc", Size: 2 << 30, Table: gpt("BBBB")}
	disks := []inventory.Disk{a, twin, anon}

	t1 := Of(a, "NEW1")
	if got, err := t1.Find(disks); err != nil || got.Path != "/dev/vda" {
		t.Errorf("by serial: %v %v", got, err)
	}
	moved := a
	moved.Path, moved.Table = "/dev/sdz", gpt("NEW1") // another port, the job's own table
	if !t1.Matches(moved) {
		t.Error("the same serial and size on another port, after the table step, does not match")
	}
	if bigger := a; func() bool { bigger.Size++; return t1.Matches(bigger) }() {
		t.Error("another size matches")
	}
	t2 := Of(anon, "NEW2")
	if !t2.Anonymous() || t1.Anonymous() {
		t.Error("Anonymous")
	}
	for _, table := range []string{"bbbb", "new2"} { // either table, any case
		d := anon
		d.Table = gpt(table)
		if !t2.Matches(d) {
			t.Errorf("no serial, table %s: no match", table)
		}
	}
	if d := anon; func() bool { d.Table = nil; return t2.Matches(d) }() {
		t.Error("no serial and no table matches")
	}
	if _, err := (Disk{Serial: "S9", Size: 1}).Find(disks); !errors.Is(err, ErrGone) {
		t.Errorf("a disk not here: %v", err)
	}
	if _, err := (Disk{OldTable: "AAAA", Size: 1 << 30}).Find(disks); !errors.Is(err, ErrGone) {
		t.Errorf("two disks with the table: %v, want ErrGone naming both", err)
	}
}

func TestNames(t *testing.T) {
	d := inventory.Disk{Serial: "S1", Table: &inventory.Table{Type: "gpt", ID: "AAAA"}}
	if n := Name(d); n != "serial S1, gpt AAAA" {
		t.Errorf("Name = %q", n)
	}
	if n := Name(inventory.Disk{WWID: "naa.5", Serial: "S1"}); n != "wwid naa.5" {
		t.Errorf("Name prefers the WWID: %q", n)
	}
	header := "serial S1, gpt AAAA, root 1234"
	if !Names(header, d, false) {
		t.Error("the header of this disk's run")
	}
	after := d
	after.Table.ID = "NEW1"
	if Names(header, after, false) || !Names(header, after, true) {
		t.Error("after the table step only the serial counts")
	}
	if Names("serial S11, gpt AAAA", d, true) {
		t.Error("a serial that only begins with this one")
	}
	if !Named(d, []string{"X", "S1"}) || Named(inventory.Disk{}, []string{""}) {
		t.Error("Named")
	}
}
