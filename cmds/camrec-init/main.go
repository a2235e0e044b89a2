// Command camrec-init is /init of camrec 8's initrd: it mounts the root
// named by root=PARTUUID= and switches to it. See package v8.
package main

import v8 "github.com/passeur/passeur/qemu/camrec/v8"

func main() { v8.InitMain() }
