// Package camrec is the reference appliance passeur's tests and demo use: a
// small video recording product. Its on-disk formats are in package
// format (named here too, for the tests and the demo); this package, in
// v7.go, builds installed v7 systems the way the vendor did, with the
// host's sfdisk, mkfs.ext4 -d and mkfs.xfs, and in v8.go builds camrec 8.
package camrec

import "github.com/passeur/passeur/initramfs/recovery/camrec/format"

// The formats, as package format defines them.
type (
	Camera  = format.Camera
	Config  = format.Config
	Report  = format.Report
	Segment = format.Segment
)

// The formats' paths and constants.
const (
	ConfigV7File    = format.ConfigV7File
	VersionFile     = format.VersionFile
	IndexV1File     = format.IndexV1File
	SegmentDuration = format.SegmentDuration
)

// The formats' functions.
var (
	ErrIndexCorrupt = format.ErrIndexCorrupt
	WriteConfigV7   = format.WriteConfigV7
	ParseConfigV7   = format.ParseConfigV7
	Sort            = format.Sort
	WriteIndexV1    = format.WriteIndexV1
	ParseIndexV1    = format.ParseIndexV1
	RelPath         = format.RelPath
	ParseRelPath    = format.ParseRelPath
	Content         = format.Content
)
