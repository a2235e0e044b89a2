// Command passeur-agent is /init of the passeur rescue initramfs. All of its
// work is in package agent.
//
// The products whose recording index the rescue can rebuild are chosen here,
// by blank imports, as database/sql drivers are: each registers its
// recovery.Indexer under its product name.
package main

import (
	"github.com/passeur/passeur/initramfs/agent"

	_ "github.com/passeur/passeur/initramfs/recovery/camrec" // the reference appliance, camrec
)

func main() { agent.Main() }
