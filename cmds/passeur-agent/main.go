// Command passeur-agent is /init of the passeur rescue initramfs. All of its
// work is in package agent.
package main

import "github.com/passeur/passeur/initramfs/agent"

func main() { agent.Main() }
