package agent

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/passeur/passeur/initramfs/inventory"
)

// blockState is a fingerprint of the block devices sysfs shows: names,
// sizes and partitions.
func blockState(sys inventory.SysFS) string {
	names, _ := sys.ReadDir("block")
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		size, _ := sys.ReadFile("block/" + n + "/size")
		parts, _ := sys.ReadDir("block/" + n)
		np := 0
		for _, p := range parts {
			if strings.HasPrefix(p, n) {
				np++
			}
		}
		fmt.Fprintf(&b, "%s:%s:%d;", n, strings.TrimSpace(string(size)), np)
	}
	return b.String()
}

// Settle waits until the block devices stop changing: the fingerprint must
// stay the same for quiet, polled every poll, at most until limit. Devices
// appear asynchronously (USB enumeration, SCSI scans) after their modules
// load, so there is no single event to wait for.
func Settle(sys inventory.SysFS, quiet, poll, limit time.Duration, now func() time.Time, sleep func(time.Duration)) (time.Duration, error) {
	start := now()
	last, since := blockState(sys), start
	for {
		t := now()
		if t.Sub(since) >= quiet {
			return t.Sub(start), nil
		}
		if t.Sub(start) >= limit {
			return t.Sub(start), fmt.Errorf("block devices still changing after %v", limit)
		}
		sleep(poll)
		if s := blockState(sys); s != last {
			last, since = s, now()
		}
	}
}
