// Package config is the agent's configuration: one documented struct, filled
// from the passeur.* keys of the kernel command line.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/passeur/passeur/image/fleet/wire"
	"github.com/passeur/passeur/image/release"
	"github.com/passeur/passeur/image/repo"
)

// Namespace prefixes every key passeur reads from the kernel command line.
const Namespace = "passeur."

// Mode is what the agent does once the inventory is done.
type Mode string

// The modes known so far.
const (
	ModeWait     Mode = "wait"     // stay up, idle (the default)
	ModeShell    Mode = "shell"    // debug shell on the console
	ModePoweroff Mode = "poweroff" // power the machine off
	ModePlan     Mode = "plan"     // dry run: find the media, the release and every disk's role, print them, write nothing
	ModeBackup   Mode = "backup"   // back up the configuration and index to the install media, verified
	ModeRecover  Mode = "recover"  // rebuild the index from the recordings, then back up with it
	ModeRestore  Mode = "restore"  // put a verified backup back into the installed system
	ModeMigrate  Mode = "migrate"  // back up, write the release, reattach, restore, boot the new system
	ModeInstall  Mode = "install"  // write the release on a blank system disk and boot it
	ModeRollback Mode = "rollback" // put the system disk back as it was before the last migration, from its save on the media
)

var modes = []Mode{ModeWait, ModeShell, ModePoweroff, ModePlan, ModeBackup, ModeRecover, ModeRestore, ModeMigrate, ModeInstall, ModeRollback}

// debugs are the known passeur.debug= outputs.
var debugs = []string{
	"sysfs",          // emit a capture of what inventory read from /sys
	"no-space-check", // run the backup even when preflight finds too little room (to prove the media-full path)
	"stacks",         // print every goroutine's and every thread's kernel stack each 30 s (a hang's whereabouts)
	"panic",          // panic at the start of the mode: proves PID 1 recovers from its own bugs
}

// Config is everything the agent can be told.
type Config struct {
	// Mode is passeur.mode=: wait (default), shell, poweroff, plan,
	// backup, recover, restore, migrate, install or rollback.
	Mode Mode
	// Debug is passeur.debug=, a comma-separated list of the outputs
	// named in debugs.
	Debug []string
	// AgeRecipients is passeur.age-recipient=, comma-separated age public
	// keys (age1…): the backup is encrypted to them.
	AgeRecipients []string
	// Backup is passeur.backup=: the backup to restore, by its folder name
	// (its UTC stamp); the default is the newest complete one of the host.
	Backup string
	// Restore is passeur.restore=: yes (the default) puts the backed-up
	// configuration and index into the new system's state partition; no
	// starts the new system fresh (the backup stays on the media).
	Restore bool
	// ReadBack is passeur.verify=readback: every written partition image
	// is read back from the disk and hashed again.
	ReadBack bool
	// Repo is passeur.repo=: the URL of an HTTP release repository, used
	// when the media holds no release (or Release names one it lacks).
	Repo string
	// Release is passeur.release=: a version (8.0.0) or a tag (stable, an
	// account's test tag) of the repository; the default is the media's
	// newest release, else the account's default, else the repository's
	// "stable" tag.
	Release string
	// Account is passeur.account=: the box's account in the repository,
	// whose default version (and test tags) it takes.
	Account string
	// Report is passeur.report=: the fleet server's report URL
	// (http://mirror:8080/fleet/report), Box passeur.box= the box's ID
	// there and ReportToken passeur.report-token= the token it was
	// enrolled with (passeur fleet enroll): the box reports the outcome
	// of a migration, with the new system's health report.
	Report, Box, ReportToken string
	// FormatData is passeur.format-data=: serials (or WWIDs) of blank
	// disks an install makes data disks of (one ext4 each); nothing else
	// is ever formatted.
	FormatData []string
	// Target is passeur.target=: the serial (or WWID) of the blank disk an
	// install writes, needed when there are several.
	Target string
	// Unattended is passeur.unattended=yes: no question is ever asked;
	// where one would be, the run stops with the named refusal.
	Unattended bool
	// WayBack is passeur.wayback=yes, on the entry of the rescue a staged
	// run laid on the new ESP: the firmware started it because the system
	// disk is being written, and there is no old system to go back to.
	WayBack bool
	// Control is passeur.control=: "vsock" (the default) serves the event
	// stream on vsock port 1024; "off" does not.
	Control string
	// Net is passeur.net=: "off" (the default) or "dhcp", DHCPv4 on the
	// wired interfaces.
	Net string
	// Staged is passeur.staged=UUID/DIR: the release staged by the box's
	// running system (passeur stage) is in the folder DIR of the
	// filesystem whose UUID is UUID, a data volume: the rescue takes it as
	// its install media.
	Staged Staged
	// Then is passeur.then=: what a migration or an install does once the
	// new system is written: "boot" it (the default), or "poweroff" (an
	// update applied at shutdown: the box powers off, and its next
	// power-on starts the new system).
	Then string
	// SettleMillis is passeur.settle=: how long, in milliseconds, the set of
	// block devices must stay unchanged before it is taken as complete.
	SettleMillis int
}

// passeur.then= values.
const (
	ThenBoot     = "boot"
	ThenPoweroff = "poweroff"
)

// Reports tells whether the box reports to a fleet server: its URL, the
// box's ID and its token all given.
func (c Config) Reports() bool { return c.Report != "" && c.Box != "" && c.ReportToken != "" }

// Staged names a staging area: a folder at the root of a filesystem.
type Staged struct {
	UUID string
	Dir  string
}

var uuidRe = regexp.MustCompile(`^[0-9A-Fa-f][0-9A-Fa-f-]{3,63}$`)

// ParseStaged reads UUID/DIR.
func ParseStaged(v string) (Staged, error) {
	id, dir, ok := strings.Cut(v, "/")
	if !ok || !uuidRe.MatchString(id) || release.CheckName("folder", dir) != nil {
		return Staged{}, fmt.Errorf("%q is not a filesystem UUID, a slash and a folder name", v)
	}
	return Staged{UUID: id, Dir: dir}, nil
}

func (s Staged) String() string {
	if s.UUID == "" {
		return ""
	}
	return s.UUID + "/" + s.Dir
}

// Default is the configuration when the command line says nothing.
func Default() Config {
	return Config{Mode: ModeWait, Net: "off", Control: "vsock", SettleMillis: 1500, Restore: true, Then: ThenBoot}
}

// Errors a caller may branch on; every returned error wraps one of them.
var (
	ErrUnknownKey = errors.New("unknown passeur key")
	ErrBadValue   = errors.New("bad value for passeur key")
)

// keys maps each passeur.* key (without namespace) to its setter.
var tokenRe = regexp.MustCompile(`^[0-9a-f]{16,128}$`)

var keys = map[string]func(*Config, string) error{
	"mode": func(c *Config, v string) error {
		m := Mode(v)
		if !slices.Contains(modes, m) {
			return fmt.Errorf("%q is not one of %v", v, modes)
		}
		c.Mode = m
		return nil
	},
	"debug": func(c *Config, v string) error {
		for _, d := range strings.Split(v, ",") {
			if !slices.Contains(debugs, d) {
				return fmt.Errorf("unknown debug output %q (known: %s)", d, strings.Join(debugs, ", "))
			}
			c.Debug = append(c.Debug, d)
		}
		return nil
	},
	"age-recipient": func(c *Config, v string) error {
		for _, r := range strings.Split(v, ",") {
			if !strings.HasPrefix(r, "age1") {
				return fmt.Errorf("%q is not an age public key (age1…)", r)
			}
			c.AgeRecipients = append(c.AgeRecipients, r)
		}
		return nil
	},
	"backup": func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, "/\\") {
			return fmt.Errorf("%q is not a backup folder name", v)
		}
		c.Backup = v
		return nil
	},
	"restore": func(c *Config, v string) (err error) {
		c.Restore, err = yesNo(v)
		return err
	},
	"verify": func(c *Config, v string) error {
		switch v {
		case "readback":
			c.ReadBack = true
		case "stream":
			c.ReadBack = false
		default:
			return fmt.Errorf("%q is not stream or readback", v)
		}
		return nil
	},
	"repo": func(c *Config, v string) error {
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return fmt.Errorf("%q is not an http:// or https:// URL", v)
		}
		c.Repo = strings.TrimSuffix(v, "/")
		return nil
	},
	"release": func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, "/\\ ") {
			return fmt.Errorf("%q is not a version or a tag", v)
		}
		c.Release = v
		return nil
	},
	"then": func(c *Config, v string) error {
		if v != ThenBoot && v != ThenPoweroff {
			return fmt.Errorf("%q is not %s or %s", v, ThenBoot, ThenPoweroff)
		}
		c.Then = v
		return nil
	},
	"staged": func(c *Config, v string) (err error) {
		c.Staged, err = ParseStaged(v)
		return err
	},
	"account": func(c *Config, v string) error {
		if err := repo.CheckAccount(v); err != nil {
			return err
		}
		c.Account = v
		return nil
	},
	"report": func(c *Config, v string) error {
		if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return fmt.Errorf("%q is not an http:// or https:// URL", v)
		}
		c.Report = v
		return nil
	},
	"box": func(c *Config, v string) error {
		if err := wire.CheckBox(v); err != nil {
			return err
		}
		c.Box = v
		return nil
	},
	"report-token": func(c *Config, v string) error {
		if !tokenRe.MatchString(v) {
			return fmt.Errorf("not a token of 16 to 128 hexadecimal digits")
		}
		c.ReportToken = v
		return nil
	},
	"format-data": func(c *Config, v string) error {
		for _, d := range strings.Split(v, ",") {
			if d == "" {
				return fmt.Errorf("%q: empty disk identity", v)
			}
			c.FormatData = append(c.FormatData, d)
		}
		return nil
	},
	"target": func(c *Config, v string) error {
		if v == "" {
			return fmt.Errorf("empty disk identity")
		}
		c.Target = v
		return nil
	},
	"unattended": func(c *Config, v string) (err error) {
		c.Unattended, err = yesNo(v)
		return err
	},
	"wayback": func(c *Config, v string) (err error) {
		c.WayBack, err = yesNo(v)
		return err
	},
	"control": func(c *Config, v string) error {
		if v != "vsock" && v != "off" {
			return fmt.Errorf("%q is not vsock or off", v)
		}
		c.Control = v
		return nil
	},
	"net": func(c *Config, v string) error {
		if v != "off" && v != "dhcp" {
			return fmt.Errorf("%q is not off or dhcp", v)
		}
		c.Net = v
		return nil
	},
	"settle": func(c *Config, v string) error {
		var ms int
		if _, err := fmt.Sscanf(v, "%d", &ms); err != nil || ms < 0 || fmt.Sprint(ms) != v {
			return fmt.Errorf("%q is not a number of milliseconds", v)
		}
		c.SettleMillis = ms
		return nil
	},
}

// cmdlineOnly are the keys a media's file may not set: they choose where
// the media is, which the media cannot say of itself.
var cmdlineOnly = map[string]bool{"staged": true, "wayback": true}

// Keys lists the known keys, namespace included, sorted.
func Keys() []string {
	var ks []string
	for k := range keys {
		ks = append(ks, Namespace+k)
	}
	sort.Strings(ks)
	return ks
}

// HasDebug reports whether debug output d was asked for.
func (c Config) HasDebug(d string) bool { return slices.Contains(c.Debug, d) }

// File is the configuration file on the install media, relative to its
// FAT filesystem: a JSON object of the same keys as the command line,
// without the namespace, e.g. {"mode": "backup", "age-recipient": "age1…"}.
const File = "passeur/config.json"

// Load is the configuration from the media's file (may be nil) and the
// kernel command line: the file's keys apply first, the command line's
// after, so the command line wins.
func Load(cmdline string, file []byte) (Config, []error) {
	c := Default()
	var errs []error
	if file != nil {
		var obj map[string]any
		if err := json.Unmarshal(file, &obj); err != nil {
			errs = append(errs, fmt.Errorf("%w %s: %w", ErrBadValue, File, err))
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := obj[k]
			if b, ok := v.(bool); ok {
				v = map[bool]string{true: "yes", false: "no"}[b]
			}
			name := strings.TrimPrefix(k, Namespace)
			if cmdlineOnly[name] {
				errs = append(errs, fmt.Errorf("%w %s: %s is given on the kernel command line only", ErrBadValue, File, k))
				continue
			}
			errs = append(errs, apply(&c, name, fmt.Sprint(v), File+": "+k)...)
		}
	}
	reset := map[string]bool{}
	for _, p := range SplitCmdline(cmdline) {
		k, v, _ := strings.Cut(p, "=")
		if name, ok := strings.CutPrefix(k, Namespace); ok {
			if clear, list := lists[name]; list && !reset[name] {
				clear(&c) // the command line's list replaces the file's
				reset[name] = true
			}
			errs = append(errs, apply(&c, name, v, k)...)
		}
	}
	return c, errs
}

// lists are the keys whose values add up within one source.
var lists = map[string]func(*Config){
	"age-recipient": func(c *Config) { c.AgeRecipients = nil },
	"debug":         func(c *Config) { c.Debug = nil },
	"format-data":   func(c *Config) { c.FormatData = nil },
}

func yesNo(v string) (bool, error) {
	switch v {
	case "yes", "1", "true":
		return true, nil
	case "no", "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no", v)
}

// apply sets one key, named where for errors.
func apply(c *Config, name, v, where string) []error {
	set, known := keys[name]
	if !known {
		return []error{fmt.Errorf("%w %q (known: %s)", ErrUnknownKey, where, strings.Join(Keys(), ", "))}
	}
	if err := set(c, v); err != nil {
		return []error{fmt.Errorf("%w %s: %w", ErrBadValue, where, err)}
	}
	return nil
}

// FromCmdline applies the passeur.* keys of a kernel command line to the
// default configuration. Keys outside the namespace are ignored; unknown
// keys and bad values are returned as errors (one per key) and leave the
// default in place, so the agent can report them and still come up.
func FromCmdline(cmdline string) (Config, []error) { return Load(cmdline, nil) }

// SplitCmdline splits a kernel command line into parameters the way the
// kernel does: on spaces outside double quotes, with the quotes removed.
func SplitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
