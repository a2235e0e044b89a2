package agent

// Link is a network interface as the inventory reports it.
type Link struct {
	Name  string `json:"name"`
	MAC   string `json:"mac,omitempty"`
	Up    bool   `json:"up"`
	Kind  string `json:"kind"` // device, loopback, ...
	Index int    `json:"index"`
}
