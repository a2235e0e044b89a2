// Package board loads board definitions: the declarative description of a
// piece of hardware passeur runs on (architecture, Debian kernel package,
// kernel modules, console, QEMU settings). Each board is a folder beside this
// file holding a board.json and a README.md that explains it.
package board

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
)

//go:embed */board.json
var defs embed.FS

// Board is one board definition.
type Board struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Arch is the GOARCH of the binaries built for the board.
	Arch   string `json:"arch"`
	Kernel Kernel `json:"kernel"`
	// Console is the kernel's console device for this board.
	Console string `json:"console"`
	// Modules are loaded in this order at boot, each with its dependencies.
	Modules []string `json:"modules"`
	// ModulesOnDemand are carried in the image with their dependencies
	// but loaded only by the step that needs them, where it applies: a
	// module whose init refuses a box it does not apply to (efivarfs on a
	// box not started by UEFI) would otherwise fail every boot there.
	ModulesOnDemand []string `json:"modules_on_demand,omitempty"`
	// ModuleParams gives parameters for some of Modules, by module name.
	ModuleParams map[string]string `json:"module_params,omitempty"`
	QEMU         QEMU              `json:"qemu"`
}

// Kernel says which kernel the board boots and how.
type Kernel struct {
	// DebianPackage is the Debian package (or metapackage) of the kernel.
	DebianPackage string `json:"debian_package"`
	// Cmdline is the board's part of the kernel command line.
	Cmdline string `json:"cmdline"`
}

// QEMU holds the machine settings the harness uses to emulate the board.
type QEMU struct {
	Binary    string `json:"binary"`
	Machine   string `json:"machine"`
	CPU       string `json:"cpu"`
	MemoryMiB int    `json:"memory_mib"`
	SMP       int    `json:"smp"`
	Accel     string `json:"accel"`
}

// ImageFile is where images built for a board hold its definition,
// relative to their root: Go /init programs read it at boot.
const ImageFile = "etc/passeur/board.json"

// LoadFile reads and checks a board definition from a file, such as
// "/"+ImageFile inside an image.
func LoadFile(p string) (*Board, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read board definition: %w", err)
	}
	return Parse(data)
}

// ErrUnknownBoard is returned by Load for a name no folder defines.
var ErrUnknownBoard = errors.New("unknown board")

// Names lists the boards defined in this repository.
func Names() []string {
	ents, _ := fs.ReadDir(defs, ".")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Load returns the board called name.
func Load(name string) (*Board, error) {
	data, err := defs.ReadFile(path.Join(name, "board.json"))
	if err != nil {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownBoard, name, Names())
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("board %s: %w", name, err)
	}
	if b.Name != name {
		return nil, fmt.Errorf("board %s: board.json names itself %q", name, b.Name)
	}
	return b, nil
}

// Parse decodes and checks one board.json.
func Parse(data []byte) (*Board, error) {
	var b Board
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("parse board.json: %w", err)
	}
	switch {
	case b.Name == "":
		return nil, errors.New("board.json: no name")
	case b.Arch == "":
		return nil, errors.New("board.json: no arch")
	case b.Kernel.DebianPackage == "":
		return nil, errors.New("board.json: no kernel.debian_package")
	case b.Console == "":
		return nil, errors.New("board.json: no console")
	case len(b.Modules) == 0:
		return nil, errors.New("board.json: no modules")
	}
	for m := range b.ModuleParams {
		found := false
		for _, n := range b.Modules {
			found = found || n == m
		}
		if !found {
			return nil, fmt.Errorf("board.json: module_params names %q, which is not in modules", m)
		}
	}
	return &b, nil
}
