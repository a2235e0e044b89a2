// Command testsum reads `go test -json` on stdin and prints what a plain
// `go test` prints (each package's result, and the whole output of every
// test that failed), then the time of every top-level test that took more
// than a second, slowest first: where the suite's minutes go. It exits 1
// when a test or a package failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	out := map[string][]string{} // package/test -> its output lines
	type timing struct {
		name    string
		seconds float64
	}
	var times []timing
	failed := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // not an event: a build error, say
			continue
		}
		pkg := strings.TrimPrefix(e.Package, "github.com/passeur/passeur/")
		key := pkg + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Print(e.Output) // the compiler's errors
		case "build-fail":
			failed = true
		case "output":
			if e.Test != "" {
				out[key] = append(out[key], e.Output)
			} else if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "--- ") && e.Output != "PASS\n" && e.Output != "FAIL\n" {
				fmt.Print(e.Output) // package lines: ok, FAIL, no test files
			}
		case "fail":
			failed = true
			if e.Test != "" {
				fmt.Print(strings.Join(out[key], ""))
			}
		case "pass", "skip":
			delete(out, key)
		}
		if (e.Action == "pass" || e.Action == "fail") && e.Test != "" && !strings.Contains(e.Test, "/") && e.Elapsed >= 1 {
			times = append(times, timing{pkg + " " + e.Test, e.Elapsed})
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].seconds > times[j].seconds })
	var total float64
	for _, t := range times {
		total += t.seconds
	}
	fmt.Printf("\ntests over a second, slowest first (%.0f s in all):\n", total)
	for _, t := range times {
		fmt.Printf("%7.1f s  %s\n", t.seconds, t.name)
	}
	if failed {
		os.Exit(1)
	}
}
