package agent

import (
	"testing"
	"time"

	"github.com/passeur/passeur/initramfs/inventory"
)

// fakeClock advances only when slept on, and lets the test change the
// devices at chosen times.
type fakeClock struct {
	t     time.Time
	at    map[time.Duration]func()
	start time.Time
}

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(d time.Duration) {
	c.t = c.t.Add(d)
	for when, f := range c.at {
		if c.t.Sub(c.start) >= when {
			f()
			delete(c.at, when)
		}
	}
}

func TestSettleWaitsForLateDevice(t *testing.T) {
	sys := inventory.Capture{"dir:block": "vda\n", "file:block/vda/size": "100\n", "dir:block/vda": "size\n"}
	c := &fakeClock{t: time.Unix(1000, 0), start: time.Unix(1000, 0)}
	c.at = map[time.Duration]func(){
		800 * time.Millisecond: func() {
			sys["dir:block"] = "sda\nvda\n"
			sys["file:block/sda/size"] = "200\n"
		},
	}
	took, err := Settle(sys, time.Second, 100*time.Millisecond, 10*time.Second, c.now, c.sleep)
	if err != nil {
		t.Fatal(err)
	}
	if took < 1800*time.Millisecond || took > 2*time.Second {
		t.Errorf("settled after %v, want about 1.8s (late disk at 0.8s + 1s quiet)", took)
	}
}

func TestSettleGivesUp(t *testing.T) {
	sys := inventory.Capture{"dir:block": "vda\n", "file:block/vda/size": "1\n"}
	c := &fakeClock{t: time.Unix(0, 0), start: time.Unix(0, 0), at: map[time.Duration]func(){}}
	n := 0
	flap := func(d time.Duration) {
		c.sleep(d)
		n++
		sys["file:block/vda/size"] = string(rune('0'+n%2)) + "\n"
	}
	if _, err := Settle(sys, time.Second, 100*time.Millisecond, 3*time.Second, c.now, flap); err == nil {
		t.Error("Settle on a device that keeps changing: want an error")
	}
}
