package fleet

import (
	"fmt"
	"time"
)

// Text is every string the fleet page shows, in one place: the page in
// another language is another Text. The formats take their arguments in
// the order their comments give.
type Text struct {
	Lang  string // the page's lang attribute
	Title string
	AsOf  string // the server's time
	Empty string // no box enrolled

	Account string // the account's name
	NoTag   string
	Tag     string // the tag's name

	ColumnBox, ColumnVersion, ColumnSeen, ColumnOutcome string

	Unknown    string // a version not known yet
	Never      string // a box that never reported
	JustNow    string
	MinutesAgo string // minutes
	HoursAgo   string // hours
	DaysAgo    string // days

	States       map[string]string // by report state
	Toward       string            // the version a run moves to
	HealthOK     string
	HealthFailed string
	Step         string // the journal's step

	Default          string // product, version
	NoDefault        string // product
	Progress         string // done, total, version
	Failures         string // failures
	HaltAt           string // the policy's threshold
	RolloutAt        string // percent reached
	Halted           string
	HaltedByPolicy   string // the previous default
	HaltedByFailures string // failures, threshold, the previous default
	PolicyError      string // the error
}

// English is the page in English.
var English = Text{
	Lang:  "en",
	Title: "Fleet",
	AsOf:  "As of %s (server time).",
	Empty: "No box is enrolled yet (passeur fleet enroll).",

	Account: "Account %s",
	NoTag:   "No tag",
	Tag:     "Tag %s",

	ColumnBox: "Box", ColumnVersion: "Version", ColumnSeen: "Last seen", ColumnOutcome: "Last outcome",

	Unknown:    "unknown",
	Never:      "never",
	JustNow:    "just now",
	MinutesAgo: "%d min ago",
	HoursAgo:   "%d h ago",
	DaysAgo:    "%d days ago",

	States: map[string]string{
		StateStaged:    "staged",
		StateApplying:  "applying",
		StateMigrating: "migrating",
		StateDone:      "done",
		StateFailed:    "failed",
	},
	Toward:       "→ %s",
	HealthOK:     "health ok",
	HealthFailed: "health failed",
	Step:         "at step %s",

	Default:          "%s %s is the default",
	NoDefault:        "%s: the account sets no default",
	Progress:         "%d of %d boxes run %s",
	Failures:         "%d failed",
	HaltAt:           "halt threshold: %d",
	RolloutAt:        "rollout at %.0f%%",
	Halted:           "Rollout halted",
	HaltedByPolicy:   "by the account's policy: its boxes stay on %s.",
	HaltedByFailures: "failed: %d, threshold: %d; the account's boxes stay on %s.",
	PolicyError:      "The account's policy cannot be read: %s",
}

// ago says how long before now t was, in the page's words.
func (t *Text) ago(now, then time.Time) string {
	switch d := now.Sub(then); {
	case d < time.Minute:
		return t.JustNow
	case d < time.Hour:
		return fmt.Sprintf(t.MinutesAgo, int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf(t.HoursAgo, int(d/time.Hour))
	default:
		return fmt.Sprintf(t.DaysAgo, int(d/(24*time.Hour)))
	}
}
