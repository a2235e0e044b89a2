package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sendTimeout bounds one report, connection to answer, when ctx does not
// end sooner.
const sendTimeout = 30 * time.Second

// maxAnswerBytes bounds what Send reads of the server's answer.
const maxAnswerBytes = 4 << 10

// Send posts a box's report to the fleet server at reportURL (its
// ReportPath, e.g. http://mirror:8080/fleet/report) with the box's token.
// The report is checked first, as the server will. A redirect is followed
// only on the same scheme and host, never elsewhere with the token. A
// refusal is the server's error (ErrBadToken, ErrOtherBox, ErrBadReport,
// ErrTooLarge) with its words.
func Send(ctx context.Context, reportURL, token string, r Report) error {
	if err := r.Check(); err != nil {
		return err
	}
	u, err := url.Parse(reportURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("fleet report URL %q: not an http or https URL", reportURL)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(body) > MaxBodyBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(body), MaxBodyBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{CheckRedirect: func(next *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("more than 3 redirects")
		}
		if next.URL.Scheme != u.Scheme || next.URL.Host != u.Host {
			return fmt.Errorf("redirected to %s://%s, another server than %s", next.URL.Scheme, next.URL.Host, u.Host)
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fleet report to %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return refused("fleet report", u, resp, answer)
}

// refused names the fleet server's refusal of what (a report, a backup
// upload) with its words.
func refused(what string, u *url.URL, resp *http.Response, answer []byte) error {
	why := strings.TrimSpace(string(answer))
	var named error
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		named = ErrBadToken
		if strings.Contains(why, ErrNoToken.Error()) {
			named = ErrNoToken
		}
	case http.StatusForbidden:
		named = ErrOtherBox
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		named = ErrBadReport
	case http.StatusRequestEntityTooLarge:
		named = ErrTooLarge
	case http.StatusConflict:
		named = ErrBackupExists
	case http.StatusNotFound:
		if strings.Contains(why, ErrNoBackups.Error()) {
			named = ErrNoBackups
			break
		}
		fallthrough
	default:
		return fmt.Errorf("%s to %s: %s: %s", what, u.Redacted(), resp.Status, why)
	}
	return fmt.Errorf("%s to %s: %s: %w (the server said: %s)", what, u.Redacted(), resp.Status, named, why)
}
