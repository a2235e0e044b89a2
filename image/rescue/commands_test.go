package rescue

import (
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"
)

// TestCommandsFileInStep checks that commands.go (which keeps go.mod
// complete) imports exactly the commands the image is built from.
func TestCommandsFileInStep(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "commands.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		got = append(got, p)
	}
	want := []string{AgentPackage}
	for _, c := range ShellCommands {
		want = append(want, "github.com/u-root/u-root/cmds/core/"+c)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("commands.go imports %v\nwant %v", got, want)
	}
}
