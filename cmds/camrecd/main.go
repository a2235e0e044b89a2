// Command camrecd is camrec 8's service, /sbin/init of its root: it
// reattaches the data volumes, converts a restored v7 configuration and
// index, and reports health. See package v8.
package main

import v8 "github.com/passeur/passeur/qemu/camrec/v8"

// version is set by the release build (-X main.version=...).
var version = "8.0.0"

func main() { v8.ServiceMain(version) }
