// Command camrec7d is camrec 7's service as the tests lay it on a v7 root,
// so that the old system can be booted again (after a rollback): it
// reports the health of its recordings. See v8.LegacyMain.
package main

import v8 "github.com/passeur/passeur/qemu/camrec/v8"

func main() { v8.LegacyMain() }
