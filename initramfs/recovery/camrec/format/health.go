package format

// Report is the health report camrec emits after boot: what a faithful
// migration must reproduce.
type Report struct {
	Product         string   `json:"product"`
	Version         string   `json:"version"`
	Cameras         int      `json:"cameras"`
	SegmentsIndexed int      `json:"segments_indexed"`
	SegmentsMissing int      `json:"segments_missing"`
	Bytes           int64    `json:"bytes"`
	Volumes         []string `json:"volumes"` // UUIDs of the data volumes mounted, sorted
	// OK is the verdict passeur records: no indexed segment is missing.
	OK bool `json:"ok"`
}
