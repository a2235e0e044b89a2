package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/passeur/passeur/image/fleet"
	"github.com/passeur/passeur/image/mirror"
	"github.com/passeur/passeur/image/netboot"
	"github.com/passeur/passeur/image/repo"
	"github.com/passeur/passeur/image/repo/editor"
	"github.com/passeur/passeur/image/repo/repotest"
)

// TestFleetEnrollAndList: enroll prints the token alone; list shows the
// box, never heard from; enrolling again gives another token.
func TestFleetEnrollAndList(t *testing.T) {
	db := filepath.Join(t.TempDir(), "fleet.db")
	enroll := func() string {
		t.Helper()
		var out, errs bytes.Buffer
		if err := run([]string{"fleet", "enroll", "-db", db, "-box", "box-1", "-account", "acme", "-tag", "test-8.1"}, &out, &errs); err != nil {
			t.Fatal(err, errs.String())
		}
		token := strings.TrimSpace(out.String())
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
			t.Fatalf("enroll printed %q, want the token alone", out.String())
		}
		return token
	}
	if enroll() == enroll() {
		t.Fatal("enrolling again gave the same token")
	}
	var out bytes.Buffer
	if err := run([]string{"fleet", "list", "-db", db}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^box-1 +acme +test-8\.1 +- +- +never$`).MatchString(out.String()) {
		t.Fatalf("list:\n%s", out.String())
	}
	if err := run([]string{"fleet", "enroll", "-db", db, "-box", "Box 1", "-account", "acme"}, &out, &out); !errors.Is(err, fleet.ErrBadBoxID) {
		t.Fatalf("a bad box ID: %v", err)
	}
}

// TestServeFleetWithRepositoryPolicy: the fleet served beside a
// repository takes each account's rollout from the repository's metadata,
// and halts it at its threshold.
func TestServeFleetWithRepositoryPolicy(t *testing.T) {
	v := repotest.New(t)
	v.Now = time.Now().Add(-time.Hour).UTC() // the rollout starts before the reports
	v.Publish("8.0.0", "8.1.0")
	v.Edit(func(r *editor.Repo) error {
		if err := r.AddAccount("acme"); err != nil {
			return err
		}
		return r.SetDefault("acme", "camrec", "8.0.0", nil)
	})
	v.Edit(func(r *editor.Repo) error {
		return r.SetDefault("acme", "camrec", "8.1.0", &editor.RolloutSpec{Duration: 24 * time.Hour, HaltFailures: 1})
	})
	pol := folderPolicies(v.Dir)
	a, err := pol.Account("acme", "camrec")
	if err != nil || a.Default != "8.1.0" || a.Rollout == nil || a.Rollout.HaltFailures != 1 || a.Rollout.Previous != "8.0.0" {
		t.Fatalf("acme's policy %+v (%v)", a, err)
	}
	if _, err := pol.Account("beta", "camrec"); !errors.Is(err, repo.ErrUnknown) {
		t.Fatalf("an account the repository does not know: %v", err)
	}

	store, err := fleet.Open(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := fleet.Enroll(store, "box-1", "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	// The repository is a mirror of acme on the new default.
	rec := `{"format":1,"account":"acme","product":"camrec","default":"8.1.0","versions":["8.0.0","8.1.0"]}`
	if err := os.WriteFile(filepath.Join(v.Dir, mirror.File), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &netboot.Server{Bundle: t.TempDir(), Repo: v.Dir, Fleet: fleetServer(store, v.Dir, t.Logf)}
	hs := httptest.NewServer(s.HTTPServer().Handler)
	defer hs.Close()
	status := func() fleet.Progress {
		t.Helper()
		res, err := http.Get(hs.URL + fleet.StatusPath)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var st fleet.Status
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil || len(st.Rollouts) != 1 {
			t.Fatalf("status %+v (%v)", st, err)
		}
		return st.Rollouts[0]
	}
	if err := fleet.Send(context.Background(), hs.URL+fleet.ReportPath, token, fleet.Report{Box: "box-1", Product: "camrec", Version: "8.0.0", State: fleet.StateDone}); err != nil {
		t.Fatal(err)
	}
	if p := status(); p.Default != "8.1.0" || p.Total != 1 || p.Halted {
		t.Fatalf("before any failure: %+v", p)
	}
	failed := fleet.Report{Box: "box-1", Product: "camrec", Version: "8.1.0", State: fleet.StateFailed, Step: "write system", Error: "no space left"}
	if err := fleet.Send(context.Background(), hs.URL+fleet.ReportPath, token, failed); err != nil {
		t.Fatal(err)
	}
	if p := status(); !p.Halted || p.HaltedBy != fleet.HaltedByFailures || p.Failures != 1 {
		t.Fatalf("after a failure at a threshold of 1: %+v", p)
	}
	data, _ := os.ReadFile(filepath.Join(v.Dir, mirror.File))
	if r, err := mirror.ParseRecord(data); err != nil || !r.Halted {
		t.Errorf("the mirror's record after the halt: %+v, %v: want halted, for its boxes to wait", r, err)
	}
	if halted, err := store.Halted(pol, "acme", "camrec"); err != nil || !halted {
		t.Fatalf("Halted: %v %v", halted, err)
	}
}
