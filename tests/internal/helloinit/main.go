// Command helloinit is the smallest useful Go /init: it mounts /proc,
// prints the kernel's uptime as a passeur event, and powers off. The boot
// benchmark compares the agent's time to ready with it.
package main

import (
	"fmt"
	"os"

	"github.com/passeur/passeur/initramfs/event"
	"golang.org/x/sys/unix"
)

func main() {
	os.Mkdir("/proc", 0o555)
	unix.Mount("proc", "/proc", "proc", 0, "")
	var up float64
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		fmt.Sscanf(string(b), "%f", &up)
	}
	event.NewEmitter(os.Stdout).Emit("hello", map[string]float64{"uptime": up})
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
