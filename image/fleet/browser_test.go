package fleet

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is the browser the page is tested in: Debian's chromium
// (build.sh installs it). Without it the test fails, unless
// PASSEUR_NO_BROWSER=1 says to skip.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("PASSEUR_NO_BROWSER") == "1" {
		t.Skip("no chromium, and PASSEUR_NO_BROWSER=1")
	}
	t.Fatal("no chromium (apt-get install chromium, or PASSEUR_NO_BROWSER=1 to skip this test)")
	return ""
}

// browse starts a headless Chromium of its own (a fresh profile, no
// network but the test's) and gives a context of one tab in it.
func browse(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,  // --headless
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 800),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser: it must not run under a
	// timeout, which would stop the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// artifacts is where the test leaves its screenshots: $PASSEUR_ARTIFACTS,
// else out/test-artifacts at the module's root (out/ is ignored by git).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PASSEUR_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(".")
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			up := filepath.Dir(root)
			if up == root {
				t.Fatal("no go.mod above the test's folder")
			}
			root = up
		}
		dir = filepath.Join(root, "out", "test-artifacts")
	}
	dir = filepath.Join(dir, "fleet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFleetPageInChromium: seven boxes in two accounts report (done on the
// default, failed at a step, health not ok, never), and the page a real
// browser loads shows each box's version and outcome, each account's
// progress, and the halt once failures reach the threshold, not before.
func TestFleetPageInChromium(t *testing.T) {
	ctx := browse(t)
	s, c := newStore(t)
	srv := &Server{Store: s, Policies: policies(2)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = l
	hs.Start()
	defer hs.Close()

	tok := map[string]string{}
	for _, b := range []struct{ box, account, tag string }{
		{"box-1", "acme", ""}, {"box-2", "acme", ""}, {"box-3", "acme", "test-8.1"}, {"box-4", "acme", ""}, {"box-5", "acme", ""},
		{"beta-1", "beta", ""}, {"beta-2", "beta", ""},
	} {
		tok[b.box] = enroll(t, s, b.box, b.account, b.tag)
	}
	c.t = t0.Add(-20 * time.Minute)
	ok := rep("box-1", "8.1.0", StateDone)
	ok.Health = health(true)
	send(t, srv, tok["box-1"], ok)
	send(t, srv, tok["box-2"], rep("box-2", "8.1.0", StateDone))
	c.t = t0.Add(-3 * time.Hour)
	send(t, srv, tok["box-3"], rep("box-3", "8.0.0", StateDone))
	c.t = t0.Add(-5 * time.Minute)
	send(t, srv, tok["box-3"], rep("box-3", "8.1.0", StateDone))
	send(t, srv, tok["box-4"], rep("box-4", "8.0.0", StateDone))
	failed := rep("box-4", "8.1.0", StateFailed)
	failed.Step, failed.Error = "write system", "read-back of system: SHA-256 differs from the release's"
	send(t, srv, tok["box-4"], failed)
	sick := rep("beta-1", "8.1.0", StateDone)
	sick.Health = health(false)
	send(t, srv, tok["beta-1"], sick)
	send(t, srv, tok["beta-2"], rep("beta-2", "8.0.0", StateDone))
	c.t = t0

	shots := artifacts(t)
	load := func(name string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+Path)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", filepath.Join(shots, name))
	}
	text := func(sel string) string {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(qctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return strings.Join(strings.Fields(s), " ")
	}
	attr := func(sel, name string) string {
		t.Helper()
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		a, err := chromedp.Run(qctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
		if err != nil || !a.Exists {
			t.Fatalf("%s[%s]: %v (exists %v)", sel, name, err, a.Exists)
		}
		return a.Value
	}
	count := func(sel string) int {
		t.Helper()
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return len(nodes)
	}
	has := func(what, got, want string) {
		t.Helper()
		if !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to say %q", what, got, want)
		}
	}

	load("fleet-before-halt.png")
	if got := text("h1"); got != English.Title {
		t.Fatalf("title %q", got)
	}
	if n := count("section.account"); n != 2 {
		t.Fatalf("%d accounts, want 2", n)
	}
	if n := count(`section[data-account="acme"] tr.box`); n != 5 {
		t.Fatalf("%d boxes of acme, want 5", n)
	}
	if got := attr(`section[data-account="acme"] tbody.tag:nth-of-type(2)`, "data-tag"); got != "test-8.1" {
		t.Errorf("acme's second group is of tag %q, want test-8.1 after the boxes of none", got)
	}
	has("box-3's group", text(`tbody[data-tag="test-8.1"] tr.box td.id`), "box-3")
	for _, b := range []struct{ box, version, class, outcome, seen string }{
		{"box-1", "8.1.0", "ok", "done · health ok (cameras 3, segments_indexed 30, segments_missing 0, volumes 2)", "20 min ago"},
		{"box-2", "8.1.0", "ok", "done", "20 min ago"},
		{"box-3", "8.1.0", "ok", "done", "5 min ago"},
		{"box-4", "8.0.0", "failed", "failed → 8.1.0 · at step write system read-back of system: SHA-256 differs from the release's", "5 min ago"},
		{"box-5", English.Unknown, "never", "", English.Never},
		{"beta-1", "8.1.0", "failed", "done · health failed", "5 min ago"},
		{"beta-2", "8.0.0", "ok", "done", "5 min ago"},
	} {
		row := `tr[data-box="` + b.box + `"]`
		if got := text(row + " td.version"); got != b.version {
			t.Errorf("%s: version %q, want %q", b.box, got, b.version)
		}
		if got := attr(row, "class"); got != "box "+b.class {
			t.Errorf("%s: class %q, want %q", b.box, got, "box "+b.class)
		}
		if b.outcome != "" {
			has(b.box+"'s outcome", text(row+" td.outcome"), b.outcome)
		}
		has(b.box+" last seen", text(row+" td.seen"), b.seen)
	}
	has("box-4's step", text(`tr[data-box="box-4"] span.step`), "write system")
	has("box-1 seen at", attr(`tr[data-box="box-1"] time`, "datetime"), "2026-03-02T08:40:00Z")

	acme := `section[data-account="acme"] div.rollout[data-product="camrec"]`
	has("acme's progress", text(acme+" span.progress"), "3 of 5 boxes run 8.1.0")
	has("acme's failures", text(acme+" span.failures"), "1 failed")
	has("acme's threshold", text(acme+" span.threshold"), "halt threshold: 2")
	if h := attr(acme, "data-halted"); h != "false" || count(acme+" p.halt") != 0 {
		t.Errorf("acme at 1 failure of 2: halted %q, %d halt notices", h, count(acme+" p.halt"))
	}
	beta := `section[data-account="beta"] div.rollout[data-product="camrec"]`
	has("beta's progress", text(beta+" span.progress"), "0 of 2 boxes run 8.1.0")
	if h := attr(beta, "data-halted"); h != "true" {
		t.Errorf("beta at 1 failure of 1: halted %q", h)
	}
	has("beta's halt", text(beta+" p.halt"), "Rollout halted failed: 1, threshold: 1; the account's boxes stay on 8.0.0.")

	// A second failure on acme's default: the threshold.
	c.t = t0.Add(-time.Minute)
	failed = rep("box-5", "8.1.0", StateFailed)
	failed.Step, failed.Error = "backup", "the media is full"
	send(t, srv, tok["box-5"], failed)
	c.t = t0
	load("fleet-halted.png")
	if h := attr(acme, "data-halted"); h != "true" {
		t.Errorf("acme at 2 failures of 2: halted %q", h)
	}
	has("acme's failures", text(acme+" span.failures"), "2 failed")
	has("acme's halt", text(acme+" p.halt"), "Rollout halted failed: 2, threshold: 2; the account's boxes stay on 8.0.0.")
	has("acme's progress", text(acme+" span.progress"), "3 of 5")
	has("box-5's outcome", text(`tr[data-box="box-5"] td.outcome`), "failed → 8.1.0 · at step backup the media is full")
	has("box-5 last seen", text(`tr[data-box="box-5"] td.seen`), "1 min ago")

	resp, err := http.Get(hs.URL + StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", StatusPath, resp.Status)
	}
}
