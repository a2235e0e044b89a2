// Command camrecd is camrec 8's service, /sbin/init of its root: it
// reattaches the data volumes, takes over a restored configuration and
// index, runs the format steps of its release and of the older ones
// (8.1.0: index v3; 8.2.0: configuration format 3), and reports health.
// One source builds every camrec 8 release: the version the release
// build bakes in says which steps run. See package v8.
package main

import v8 "github.com/passeur/passeur/qemu/camrec/v8"

// version is set by the release build (-X main.version=...).
var version = "8.0.0"

func main() { v8.ServiceMain(version) }
