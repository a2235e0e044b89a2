package steps

import (
	"fmt"
	"strings"

	"github.com/passeur/passeur/image/config"
)

// Markdown renders the table of steps for the README: one row per step, in
// the order a run goes through them.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| step (journal name) | modes | needs | writes | records | folder |\n|---|---|---|---|---|---|\n")
	for _, s := range all {
		name := "`" + s.Name + "`"
		if s.Family() {
			name = "`" + s.Name + "<…>`"
		}
		w := string(s.Writes)
		if w == "" {
			w = "nothing"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | `%s/` |\n", name, modes(s.Modes), s.Needs, w, s.Records, s.Where)
	}
	return b.String()
}

func modes(ms []config.Mode) string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m))
	}
	return strings.Join(out, ", ")
}
