// Command camrec-spec writes the release spec of a camrec 8 release for
// `passeur release build -spec`: qemu/camrec/v8/release.json is 8.0.0's,
// and the later releases are derived from it (camrec.SpecV8: their
// version in the manifest, the boot entry, camrecd and the root's files,
// and a migrate_from that also takes the older camrec 8 boxes):
//
//	go run ./qemu/camrec/cmd/camrec-spec -o out/camrec-8.1.0.json 8.1.0
//	out/bin/passeur release build -spec out/camrec-8.1.0.json -out out/releases/camrec-8.1.0 -key vendor.key
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/passeur/passeur/image/atomicfile"
	"github.com/passeur/passeur/qemu/camrec"
)

func main() {
	src := flag.String("src", ".", "passeur's source tree (its module root)")
	out := flag.String("o", "", "write the spec to this file (default: standard output)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: camrec-spec [-src DIR] [-o FILE] VERSION\n\nVERSION: one of %s, or a later 8.x\n", strings.Join(camrec.V8Versions, ", "))
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*src, *out, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "camrec-spec:", err)
		os.Exit(1)
	}
}

func run(src, out, v string) error {
	spec, err := camrec.SpecV8(src, v)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // migrate_from's < and > as they are
	enc.SetIndent("", "  ")
	if err := enc.Encode(spec); err != nil {
		return err
	}
	b := buf.Bytes()
	if out == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return atomicfile.WriteFile(out, b, 0o644)
}
