package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// BackupPath is the fleet server's path of the boxes' backups: a box
// PUTs BackupPath/RUN, the body a tar of its run's backup, with its token;
// the server keeps it under the token's box and answers with what it
// stored (Stored).
const BackupPath = "/fleet/backup"

// MaxBackupBytes bounds one backup upload: a box's configuration and
// recording index, far less.
const MaxBackupBytes = 1 << 30

// backupTimeout bounds one upload, connection to answer.
const backupTimeout = 30 * time.Minute

// Stored is the server's answer to an upload: what it wrote, which the
// box compares with what it sent.
type Stored struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

var runRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$`)

// CheckRun checks a run's name as the server stores it: a backup folder's
// stamp (2026-12-02T142443Z), one plain name.
func CheckRun(run string) error {
	if !runRe.MatchString(run) || strings.Contains(run, "..") {
		return fmt.Errorf("%w: %q is not a run's name", ErrBadReport, run)
	}
	return nil
}

// BackupURL is the URL of run's backup on the fleet server whose report
// URL is reportURL (…/fleet/report → …/fleet/backup/RUN).
func BackupURL(reportURL, run string) (*url.URL, error) {
	if err := CheckRun(run); err != nil {
		return nil, err
	}
	u, err := url.Parse(reportURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(u.Path, "/report") {
		return nil, fmt.Errorf("fleet report URL %q: not an http or https URL ending in /report", reportURL)
	}
	b := *u
	b.Path = strings.TrimSuffix(u.Path, "/report") + "/backup/" + run
	b.RawQuery, b.Fragment = "", ""
	return &b, nil
}

// SendBackup uploads body, n bytes, as the backup of the box's run to the
// fleet server of reportURL with the box's token, and returns what the
// server stored. No redirect is followed: the body is sent once.
func SendBackup(ctx context.Context, reportURL, token, run string, body io.Reader, n int64) (Stored, error) {
	u, err := BackupURL(reportURL, run)
	if err != nil {
		return Stored{}, err
	}
	if n > MaxBackupBytes {
		return Stored{}, fmt.Errorf("%w: a backup of %d bytes, at most %d", ErrTooLarge, n, MaxBackupBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, backupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), io.LimitReader(body, n))
	if err != nil {
		return Stored{}, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return Stored{}, fmt.Errorf("backup upload to %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if resp.StatusCode != http.StatusCreated {
		return Stored{}, refused("backup upload", u, resp, answer)
	}
	var s Stored
	if err := json.Unmarshal(answer, &s); err != nil {
		return Stored{}, fmt.Errorf("backup upload to %s: the answer: %w", u.Redacted(), err)
	}
	return s, nil
}

// Errors of a backup upload.
var (
	// ErrNoBackups: the fleet server keeps no backups.
	ErrNoBackups = errors.New("the fleet server keeps no backups")
	// ErrBackupExists: the server keeps other bytes under the run's name.
	ErrBackupExists = errors.New("the fleet server keeps another backup of this run")
)
