package fleet

import "github.com/passeur/passeur/image/fleet/wire"

// What a box sends lives in image/fleet/wire, which a box links without
// the server; the server names it here.
type (
	Report = wire.Report
	Health = wire.Health
	Fact   = wire.Fact
)

// States a report gives of a box's last run.
const (
	StateStaged    = wire.StateStaged
	StateApplying  = wire.StateApplying
	StateMigrating = wire.StateMigrating
	StateDone      = wire.StateDone
	StateFailed    = wire.StateFailed
)

// Bounds of what a box sends and what the server keeps of it.
const (
	MaxBodyBytes   = wire.MaxBodyBytes
	MaxHealthBytes = wire.MaxHealthBytes
	MaxErrorBytes  = wire.MaxErrorBytes
	MaxStepBytes   = wire.MaxStepBytes
	History        = wire.History
)

// Errors a caller may branch on (the same values as wire's).
var (
	ErrBadBoxID    = wire.ErrBadBoxID
	ErrNotEnrolled = wire.ErrNotEnrolled
	ErrNoToken     = wire.ErrNoToken
	ErrBadToken    = wire.ErrBadToken
	ErrOtherBox    = wire.ErrOtherBox
	ErrBadReport   = wire.ErrBadReport
	ErrTooLarge    = wire.ErrTooLarge
	ErrFull        = wire.ErrFull
)

// CheckBox, ReadHealth and Send are wire's.
var (
	CheckBox   = wire.CheckBox
	ReadHealth = wire.ReadHealth
	Send       = wire.Send
)
