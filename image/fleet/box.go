package fleet

import "time"

// Box is an enrolled box as the store keeps it.
type Box struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Tag     string `json:"tag,omitempty"`
	// Enrolled is when the box was first enrolled, TokenIssued when its
	// current token was.
	Enrolled    time.Time `json:"enrolled"`
	TokenIssued time.Time `json:"token_issued"`
	// TokenHash is the hex SHA-256 of the box's token.
	TokenHash string `json:"token_sha256"`
	// Seen is when the server received the box's last report, by the
	// server's clock.
	Seen time.Time `json:"seen,omitzero"`
	// Running is what the box's last done report said it runs.
	Running *Version `json:"running,omitempty"`
	// Failures are the versions the box failed to reach, or whose health
	// report failed: when the server last heard so, one per product and
	// version, the newest maxFailures.
	Failures []Failure `json:"failures,omitempty"`

	// Last is the box's last report, nil before its first; Boxes and Box
	// fill it in, the record does not hold it.
	Last *Received `json:"-"`
}

// Version is a product's version.
type Version struct {
	Product string `json:"product"`
	Version string `json:"version"`
}

// Failure is a version a box failed on, and when the server last heard so.
type Failure struct {
	Product string    `json:"product"`
	Version string    `json:"version"`
	At      time.Time `json:"at"`
}

// Received is a report as stored: with the server's time of receipt.
type Received struct {
	Report
	Received time.Time `json:"received"`
}

// Failed tells whether the report is a failure of its version: a failed
// run, or a health report whose verdict is not ok.
func (r *Received) Failed() bool {
	if r.State == StateFailed {
		return true
	}
	h, err := ReadHealth(r.Health)
	return err == nil && !h.OK
}

// addFailure records f, replacing the failure of the same version, and
// keeps the newest maxFailures.
func addFailure(fs []Failure, f Failure) []Failure {
	out := []Failure{}
	for _, x := range fs {
		if x.Product != f.Product || x.Version != f.Version {
			out = append(out, x)
		}
	}
	out = append(out, f)
	if len(out) > maxFailures {
		out = out[len(out)-maxFailures:]
	}
	return out
}
