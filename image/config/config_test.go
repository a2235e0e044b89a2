package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(`console=ttyS0  passeur.mode=shell "a=b c" d="e f"` + "\n")
	want := []string{"console=ttyS0", "passeur.mode=shell", "a=b c", "d=e f"}
	if !slices.Equal(got, want) {
		t.Errorf("SplitCmdline = %q, want %q", got, want)
	}
}

func TestFromCmdline(t *testing.T) {
	c, errs := FromCmdline("BOOT_IMAGE=/vmlinuz console=ttyS0 passeur.mode=poweroff passeur.debug=sysfs passeur.settle=200 passeur.net=dhcp passeur.unattended=yes quiet")
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if c.Mode != ModePoweroff || !c.HasDebug("sysfs") || c.SettleMillis != 200 || c.Net != "dhcp" || !c.Unattended {
		t.Errorf("config = %+v", c)
	}
}

func TestFromCmdlineDefault(t *testing.T) {
	c, errs := FromCmdline("console=ttyS0 passeurmode=shell")
	if len(errs) != 0 || c.Mode != ModeWait || c.SettleMillis != Default().SettleMillis {
		t.Errorf("config = %+v errs %v, want the default", c, errs)
	}
}

func TestFromCmdlineErrors(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    error
	}{
		{"passeur.mdoe=shell", ErrUnknownKey},
		{"passeur.mode=dance", ErrBadValue},
		{"passeur.debug=everything", ErrBadValue},
		{"passeur.settle=-1", ErrBadValue},
		{"passeur.settle=1s", ErrBadValue},
		{"passeur.=x", ErrUnknownKey},
		{"passeur.net=wifi", ErrBadValue},
		{"passeur.unattended=maybe", ErrBadValue},
		{"passeur.control=tcp", ErrBadValue},
		{"passeur.staged=0a1b2c3d-1111-2222-3333-444455556666", ErrBadValue},
		{"passeur.staged=0a1b2c3d/../etc", ErrBadValue},
		{"passeur.staged=0a1b2c3d/a/b", ErrBadValue},
		{"passeur.staged=/dev/sda1/x", ErrBadValue},
	} {
		c, errs := FromCmdline(tc.cmdline + " passeur.mode=shell")
		if len(errs) != 1 || !errors.Is(errs[0], tc.want) {
			t.Errorf("FromCmdline(%q) errors = %v, want one %v", tc.cmdline, errs, tc.want)
		}
		if c.Mode != ModeShell {
			t.Errorf("FromCmdline(%q): a bad key must not stop the good ones: mode %q", tc.cmdline, c.Mode)
		}
	}
}

func TestStaged(t *testing.T) {
	c, errs := FromCmdline("passeur.mode=migrate passeur.staged=0a1b2c3d-1111-2222-3333-444455556666/passeur-staging")
	if len(errs) != 0 || c.Staged != (Staged{UUID: "0a1b2c3d-1111-2222-3333-444455556666", Dir: "passeur-staging"}) {
		t.Fatalf("config %+v, errors %v", c.Staged, errs)
	}
	if got := c.Staged.String(); got != "0a1b2c3d-1111-2222-3333-444455556666/passeur-staging" {
		t.Errorf("String = %q", got)
	}
	// A media cannot say where the media is.
	c, errs = Load("", []byte(`{"staged": "0a1b2c3d/passeur-staging"}`))
	if len(errs) != 1 || !errors.Is(errs[0], ErrBadValue) || c.Staged.UUID != "" {
		t.Errorf("staged from the media's file: %+v, errors %v", c.Staged, errs)
	}
}

func TestLoadFileThenCmdline(t *testing.T) {
	file := []byte(`{"mode": "backup", "age-recipient": "age1xyz", "unattended": true, "colour": "blue"}`)
	c, errs := Load("quiet passeur.mode=recover", file)
	if c.Mode != ModeRecover || !c.Unattended || len(c.AgeRecipients) != 1 || c.AgeRecipients[0] != "age1xyz" {
		t.Errorf("config %+v", c)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrUnknownKey) || !strings.Contains(errs[0].Error(), File+": colour") {
		t.Errorf("errors %v", errs)
	}
	c, _ = Load("passeur.age-recipient=age1abc,age1def", file)
	if len(c.AgeRecipients) != 2 || c.AgeRecipients[0] != "age1abc" {
		t.Errorf("command line list does not replace the file's: %v", c.AgeRecipients)
	}
	if _, errs := Load("", []byte("{")); len(errs) != 1 || !errors.Is(errs[0], ErrBadValue) {
		t.Errorf("bad JSON: %v", errs)
	}
}

// FuzzLoad: a kernel command line and the media's config file are read
// as given; whatever they hold, Load never panics and leaves a mode
// passeur knows.
func FuzzLoad(f *testing.F) {
	f.Add("BOOT_IMAGE=/vmlinuz console=ttyS0 passeur.mode=migrate passeur.unattended=yes passeur.debug=sysfs,stacks", []byte(`{"mode": "backup", "age-recipient": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "unattended": true}`))
	f.Add(`passeur.format-data="A B" passeur.repo=http://10.0.2.100/repo passeur.settle=200`, []byte(`{"repo": 3, "debug": ["x"]}`))
	f.Add("passeur.mode=", []byte("not json"))
	f.Fuzz(func(t *testing.T, cmdline string, file []byte) {
		c, _ := Load(cmdline, file)
		known := false
		for _, m := range modes {
			known = known || c.Mode == m
		}
		if !known {
			t.Fatalf("mode %q", c.Mode)
		}
	})
}
