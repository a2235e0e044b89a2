// Package fetch downloads release files over HTTP into a folder, resuming
// an interrupted download with a Range request instead of starting over,
// retrying a bounded number of times with growing pauses. It checks sizes
// only: what a file is worth is decided by its signature and hashes, by
// the caller, before anything acts on it.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/passeur/passeur/image/atomicfile"
)

// Options tune File.
type Options struct {
	// Client makes the requests (default: one whose connection, TLS
	// handshake and response header are each bounded in time). Its
	// redirects are followed only within the URL's host, and RedirectHosts.
	Client *http.Client
	// Attempts bounds the requests, first included (default 5); the pause
	// before a retry doubles from Backoff (default 1 s).
	Attempts int
	Backoff  time.Duration
	// Size, when known (from a signed manifest), is the file's size: the
	// body is stopped there, and a server declaring or sending more
	// (ErrTooLarge, ErrSize) or less (ErrShort) is refused. Unknown (0),
	// the file is unsigned metadata, bounded by Limit.
	Size int64
	// Limit bounds a file of unknown Size (default MaxUnsigned).
	Limit int64
	// RedirectHosts are the hosts ("mirror.lab:8080") a redirect may lead
	// to besides the URL's own; a redirect anywhere else is refused
	// (ErrRedirect).
	RedirectHosts []string
	// Progress, when set, is told the bytes on disk after each read.
	Progress func(done int64)
	// Log, when set, is told of each retry.
	Log func(format string, a ...any)
	// Stall ends an attempt that receives nothing for this long (default
	// one minute): a server or a network that stops without closing the
	// connection, or trickles its header, costs a retry, never the whole
	// run. There is no deadline on the whole body: a large file on a slow
	// link takes as long as it keeps flowing.
	Stall time.Duration
}

// MaxUnsigned bounds a file no signed metadata gives the size of (a
// repository index, a manifest, a signature): it is on the media and read
// into memory before its signature is checked.
const MaxUnsigned = 1 << 20

// ErrStalled ends an attempt that received nothing for Options.Stall.
var ErrStalled = errors.New("no data received")

// Result says how a download went.
type Result struct {
	Bytes    int64 `json:"bytes"`
	Attempts int   `json:"attempts"`
	Resumed  int   `json:"resumed"` // requests that continued a partial file
}

// Errors a caller may branch on.
var (
	ErrStatus   = errors.New("HTTP server refused the file")
	ErrSize     = errors.New("file size differs from the expected one")
	ErrTooLarge = errors.New("server sent more than the file may hold")
	ErrShort    = errors.New("server sent less than the file's size")
	ErrRedirect = errors.New("redirect to another host refused")
	ErrGaveUp   = errors.New("download failed after every attempt")
)

// StatusError is the server's refusal of a file, with its HTTP status: it
// is ErrStatus.
type StatusError struct {
	URL    string
	Code   int
	Status string
}

func (e *StatusError) Error() string        { return fmt.Sprintf("%v: %s: %s", ErrStatus, e.URL, e.Status) }
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// File downloads url to path. The bytes go to path+".part" first, kept
// across attempts (and across runs: a later call resumes it); path appears,
// renamed and synced, only once the whole file is there. A refused file
// leaves path as it was, and no .part when the server sent too much.
func File(ctx context.Context, url, path string, o Options) (Result, error) {
	o.Client = sameHost(o.Client, o.RedirectHosts)
	if o.Limit <= 0 {
		o.Limit = MaxUnsigned
	}
	if o.Size > 0 {
		o.Limit = o.Size
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Stall <= 0 {
		o.Stall = time.Minute
	}
	part := path + ".part"
	var r Result
	var last error
	pause := o.Backoff
	for r.Attempts < o.Attempts {
		if r.Attempts > 0 {
			if o.Log != nil {
				o.Log("fetch %s: %v; again in %s", url, last, pause)
			}
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-time.After(pause):
			}
			pause *= 2
		}
		r.Attempts++
		done, resumed, err := attempt(ctx, url, part, o)
		r.Bytes = done
		if resumed {
			r.Resumed++
		}
		if err == nil {
			if err := atomicfile.Rename(part, path); err != nil {
				return r, err
			}
			return r, nil
		}
		if errors.Is(err, ErrTooLarge) {
			// Never resumed: the next run would take these bytes, as
			// many as the file may have, for the whole file.
			os.Remove(part)
		}
		if errors.Is(err, ErrStatus) || errors.Is(err, ErrSize) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrRedirect) || ctx.Err() != nil {
			return r, err
		}
		last = err
	}
	return r, fmt.Errorf("%w (%d): %s: %w", ErrGaveUp, r.Attempts, url, last)
}

// attempt makes one request, continuing part if it has bytes, and returns
// the bytes part holds afterwards. nil means part is the whole file.
func attempt(ctx context.Context, url, part string, o Options) (int64, bool, error) {
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, false, err
	}
	if o.Size > 0 && have == o.Size {
		return have, false, nil
	}
	if have > o.Limit {
		have = 0 // not this file's: a 200 response truncates it
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(o.Stall, func() { cancel(fmt.Errorf("%w for %s", ErrStalled, o.Stall)) })
	defer stall.Stop()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, url, nil)
	if err != nil {
		return have, false, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return have, false, stalled(actx, err)
	}
	defer resp.Body.Close()
	total := int64(-1)
	resumed := false
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return have, false, fmt.Errorf("%w: %s: Content-Range %q for bytes=%d-", ErrStatus, url, resp.Header.Get("Content-Range"), have)
		}
		total, resumed = size, true
	case resp.StatusCode == http.StatusOK:
		// A whole file: the server ignores ranges, or there was nothing.
		have = 0
		if err := f.Truncate(0); err != nil {
			return 0, false, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, false, err
		}
		total = resp.ContentLength
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// What we have may already be everything; the size check says.
		total = have
	default:
		return have, false, &StatusError{URL: url, Code: resp.StatusCode, Status: resp.Status}
	}
	if o.Size > 0 && total >= 0 && total != o.Size {
		return have, resumed, fmt.Errorf("%w: %s is %d bytes, %d expected", ErrSize, url, total, o.Size)
	}
	if total > o.Limit {
		return have, resumed, fmt.Errorf("%w: %s declares %d bytes, more than the %d an unsigned file may have", ErrTooLarge, url, total, o.Limit)
	}
	want := total
	if o.Size > 0 {
		want = o.Size
	}
	// One byte past the limit is read to tell a file that ends there from
	// one that goes on; it is never written.
	body := io.LimitReader(resp.Body, o.Limit-have+1)
	buf := make([]byte, 1<<20)
	for {
		n, rerr := body.Read(buf)
		stall.Reset(o.Stall)
		if n > 0 {
			if have+int64(n) > o.Limit {
				return have, resumed, fmt.Errorf("%w: %s goes on past %d bytes", ErrTooLarge, url, o.Limit)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return have, resumed, err
			}
			have += int64(n)
			if o.Progress != nil {
				o.Progress(have)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			f.Sync() // keep what came: the next attempt continues from it
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				return have, resumed, fmt.Errorf("%w: %s ended at %d of %d bytes: %w", ErrShort, url, have, want, rerr)
			}
			return have, resumed, stalled(actx, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return have, resumed, err
	}
	if want >= 0 && have != want {
		return have, resumed, fmt.Errorf("%w: %s ended at %d of %d bytes", ErrShort, url, have, want)
	}
	return have, resumed, nil
}

// stalled names the stall behind err, if the watchdog ended the attempt.
func stalled(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// contentRange parses "bytes start-end/size", a range inside the file.
func contentRange(h string) (start, size int64, ok bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, sz, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	s, e, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(s, 10, 64)
	end, err2 := strconv.ParseInt(e, 10, 64)
	size, err3 := strconv.ParseInt(sz, 10, 64)
	ok = err1 == nil && err2 == nil && err3 == nil && 0 <= start && start <= end && end < size
	return start, size, ok
}
