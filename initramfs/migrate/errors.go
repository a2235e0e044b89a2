package migrate

import "errors"

// Errors a caller may branch on.
var (
	// ErrTargetGone means the disk a journaled job was writing is not
	// there (or not alone): the run cannot be taken up on this machine.
	ErrTargetGone = errors.New("the disk the migration was writing is not found")
	// ErrTargetSize means the disk is no longer the size the job was
	// planned for.
	ErrTargetSize = errors.New("target disk size changed")
)
