package fleet

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"sync"
	"time"
)

//go:embed page.html
var pageHTML string

// pageTemplate is parsed on first use, not at init: a box links this
// package for Send and should not carry html/template for a page it never
// renders.
var pageTemplate = struct {
	once sync.Once
	t    *template.Template
}{}

func page() *template.Template {
	pageTemplate.once.Do(func() { pageTemplate.t = template.Must(template.New("fleet").Parse(pageHTML)) })
	return pageTemplate.t
}

// The page's view: every string already in the page's words, so that the
// template only lays them out. The classes and data- attributes it puts
// on them are what tests and scripts find them by:
//
//	section.account[data-account]          an account
//	div.rollout[data-product][data-default][data-done][data-total][data-failures][data-halted]
//	  span.progress, span.failures, p.halt  its default's progress, failures, halt
//	tbody.tag[data-tag]                    a tag's boxes ("" for none)
//	tr.box[data-box][data-state][data-health]   a box; classes ok, failed, pending, never
//	  td.version, td.seen (time[datetime], span.ago), td.outcome (span.state, span.toward, span.health, span.facts, span.step, div.error)
type pageView struct {
	T            *Text
	NowISO, AsOf string
	Accounts     []accountView
}

type accountView struct {
	Name, Heading string
	Rollouts      []rolloutView
	Tags          []tagView
}

type rolloutView struct {
	Progress
	ErrorText, DefaultText, ProgressText, FailuresText, HaltAtText, FractionText, HaltedText, HaltedWhy string
}

type tagView struct {
	Name, Label string
	Boxes       []boxView
}

type boxView struct {
	ID, Class, State, Health string
	Product, Version         string
	Seen, SeenISO, Ago       string
	StateText, Toward        string
	HealthText               string
	Facts                    []Fact
	Step, Error              string
}

// render writes the fleet page of boxes and their accounts' rollouts at now.
func render(w io.Writer, t *Text, boxes []Box, rollouts []Progress, now time.Time) error {
	v := pageView{T: t, NowISO: now.UTC().Format(time.RFC3339), AsOf: fmt.Sprintf(t.AsOf, stamp(now))}
	byAccount := map[string]*accountView{}
	var names []string
	for _, b := range boxes {
		a := byAccount[b.Account]
		if a == nil {
			a = &accountView{Name: b.Account, Heading: fmt.Sprintf(t.Account, b.Account)}
			byAccount[b.Account] = a
			names = append(names, b.Account)
		}
		var tv *tagView
		for i := range a.Tags {
			if a.Tags[i].Name == b.Tag {
				tv = &a.Tags[i]
			}
		}
		if tv == nil {
			label := t.NoTag
			if b.Tag != "" {
				label = fmt.Sprintf(t.Tag, b.Tag)
			}
			a.Tags = append(a.Tags, tagView{Name: b.Tag, Label: label})
			tv = &a.Tags[len(a.Tags)-1]
		}
		tv.Boxes = append(tv.Boxes, boxRow(t, &b, now))
	}
	for _, p := range rollouts {
		if a := byAccount[p.Account]; a != nil {
			a.Rollouts = append(a.Rollouts, rolloutRow(t, p))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		a := byAccount[n]
		// The boxes of no tag first, then each tag's.
		sort.Slice(a.Tags, func(i, j int) bool { return a.Tags[i].Name < a.Tags[j].Name })
		v.Accounts = append(v.Accounts, *a)
	}
	return page().Execute(w, v)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func boxRow(t *Text, b *Box, now time.Time) boxView {
	r := boxView{ID: b.ID, Version: t.Unknown, Class: "never", Seen: t.Never}
	if b.Running != nil {
		r.Product, r.Version = b.Running.Product, b.Running.Version
	}
	l := b.Last
	if l == nil {
		return r
	}
	r.Seen, r.SeenISO, r.Ago = stamp(l.Received), l.Received.Format(time.RFC3339), t.ago(now, l.Received)
	r.State, r.StateText = l.State, t.States[l.State]
	if l.State != StateDone {
		r.Toward = fmt.Sprintf(t.Toward, l.Version)
	}
	if h, err := ReadHealth(l.Health); err == nil {
		r.Health, r.HealthText, r.Facts = "ok", t.HealthOK, h.Facts
		if !h.OK {
			r.Health, r.HealthText = "failed", t.HealthFailed
		}
	}
	if l.Step != "" {
		r.Step = fmt.Sprintf(t.Step, l.Step)
	}
	r.Error = l.Error
	switch {
	case l.Failed():
		r.Class = "failed"
	case l.State == StateDone:
		r.Class = "ok"
	default:
		r.Class = "pending"
	}
	return r
}

func rolloutRow(t *Text, p Progress) rolloutView {
	r := rolloutView{Progress: p}
	if p.Error != "" {
		r.ErrorText = fmt.Sprintf(t.PolicyError, p.Error)
		return r
	}
	if p.Default == "" {
		r.DefaultText = fmt.Sprintf(t.NoDefault, p.Product)
		return r
	}
	r.DefaultText = fmt.Sprintf(t.Default, p.Product, p.Default)
	r.ProgressText = fmt.Sprintf(t.Progress, p.Done, p.Total, p.Default)
	r.FailuresText = fmt.Sprintf(t.Failures, p.Failures)
	if p.HaltFailures > 0 {
		r.HaltAtText = fmt.Sprintf(t.HaltAt, p.HaltFailures)
	}
	if p.Fraction != nil {
		r.FractionText = fmt.Sprintf(t.RolloutAt, 100**p.Fraction)
	}
	if p.Halted {
		r.HaltedText = t.Halted
		r.HaltedWhy = fmt.Sprintf(t.HaltedByPolicy, p.Previous)
		if p.HaltedBy == HaltedByFailures {
			r.HaltedWhy = fmt.Sprintf(t.HaltedByFailures, p.Failures, p.HaltFailures, p.Previous)
		}
	}
	return r
}
