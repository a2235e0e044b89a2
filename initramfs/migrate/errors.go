package migrate

import "errors"

// Errors a caller may branch on.
var (
	// ErrTargetSize means the disk is no longer the size the job was
	// planned for.
	ErrTargetSize = errors.New("target disk size changed")
)
