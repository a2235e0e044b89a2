package roles

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Asker settles an ambiguity: unattended, it refuses with the named error;
// interactive, it asks the operator, who may also refuse.
type Asker interface {
	// Ask returns the index of the choice made, or refusal.
	Ask(refusal error, question string, choices []string) (int, error)
}

// Unattended refuses every ambiguity: never a guess.
type Unattended struct{}

// Ask returns the refusal.
func (Unattended) Ask(refusal error, _ string, _ []string) (int, error) { return -1, refusal }

// ErrOperatorQuit wraps the refusal when the operator chose to stop.
var ErrOperatorQuit = errors.New("the operator stopped")

// Console asks on a terminal (or the serial console) and reads the answer.
type Console struct {
	In  *bufio.Reader
	Out io.Writer
}

// NewConsole asks on out and reads answers from in.
func NewConsole(in io.Reader, out io.Writer) *Console {
	return &Console{In: bufio.NewReader(in), Out: out}
}

// Ask prints the question and its numbered choices and reads a number, or
// q to stop; it asks again on anything else.
func (c *Console) Ask(refusal error, question string, choices []string) (int, error) {
	for {
		fmt.Fprintf(c.Out, "\n? %s\n", question)
		for i, ch := range choices {
			fmt.Fprintf(c.Out, "  %d) %s\n", i+1, ch)
		}
		fmt.Fprintf(c.Out, "  q) stop here, change nothing\nanswer: ")
		line, err := c.In.ReadString('\n')
		line = strings.TrimSpace(line)
		if line == "q" || (err != nil && line == "") {
			return -1, fmt.Errorf("%w: %w", ErrOperatorQuit, refusal)
		}
		if n, perr := strconv.Atoi(line); perr == nil && n >= 1 && n <= len(choices) {
			fmt.Fprintf(c.Out, "-> %s\n", choices[n-1])
			return n - 1, nil
		}
		fmt.Fprintf(c.Out, "%q is not one of the choices\n", line)
	}
}
