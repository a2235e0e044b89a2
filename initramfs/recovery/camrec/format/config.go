package format

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ConfigV7File is camrec 7's configuration file.
const ConfigV7File = "/etc/camrec/camrec.conf"

// VersionFile holds "camrec <version>".
const VersionFile = "/etc/camrec/version"

// Camera is one camera of the configuration.
type Camera struct {
	ID, Name, URL string
}

// Config is the recorder's configuration.
type Config struct {
	Site          string
	RetentionDays int
	Cameras       []Camera
}

// WriteConfigV7 writes the INI-like camrec 7 configuration.
func WriteConfigV7(w io.Writer, c Config) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# camrec 7 configuration\n[recorder]\nsite = %s\nretention_days = %d\n", c.Site, c.RetentionDays)
	for _, cam := range c.Cameras {
		fmt.Fprintf(&b, "\n[camera %s]\nname = %s\nurl = %s\n", cam.ID, cam.Name, cam.URL)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ParseConfigV7 reads a camrec 7 configuration.
func ParseConfigV7(r io.Reader) (Config, error) {
	var c Config
	sc := bufio.NewScanner(r)
	section := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			if id, ok := strings.CutPrefix(section, "camera "); ok {
				c.Cameras = append(c.Cameras, Camera{ID: strings.TrimSpace(id)})
			} else if section != "recorder" {
				return c, fmt.Errorf("camrec config line %d: unknown section [%s]", n, section)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("camrec config line %d: %q is not key = value", n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case section == "recorder" && k == "site":
			c.Site = v
		case section == "recorder" && k == "retention_days":
			if _, err := fmt.Sscanf(v, "%d", &c.RetentionDays); err != nil {
				return c, fmt.Errorf("camrec config line %d: retention_days %q", n, v)
			}
		case strings.HasPrefix(section, "camera ") && k == "name":
			c.Cameras[len(c.Cameras)-1].Name = v
		case strings.HasPrefix(section, "camera ") && k == "url":
			c.Cameras[len(c.Cameras)-1].URL = v
		default:
			return c, fmt.Errorf("camrec config line %d: unknown key %q in [%s]", n, k, section)
		}
	}
	return c, sc.Err()
}
