package cmd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/iostreams"
)

// TestHistoryFlags parses history's flags through runF, doing no work.
func TestHistoryFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		since time.Duration
		out   string
	}{
		{[]string{"deploy"}, 0, "text"},
		{[]string{"--since", "24h", "-o", "json", "deploy"}, 24 * time.Hour, "json"},
	} {
		streams, _, _, _ := iostreams.Test()
		var got *HistoryOptions
		cmd := NewCmdHistory(&Factory{IO: streams}, func(o *HistoryOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got == nil || got.Name != "deploy" || got.Since != tc.since || got.Output != tc.out {
			t.Fatalf("%v: options %+v", tc.args, got)
		}
	}
}

// TestPrintHistoryHeader checks the first line: complete, or complete only
// from a revision, and from when if a timestamp tells.
func TestPrintHistoryHeader(t *testing.T) {
	t.Setenv("TZ", "UTC")
	after := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		hist claim.History
		want string
	}{
		{claim.History{Name: "d", Revision: 9, From: 1},
			"d: 0 holds and 0 waiters that gave up; the history is complete (up to revision 9)\n"},
		{claim.History{Name: "d", Revision: 9, From: 5, Compacted: true},
			"d: 0 holds and 0 waiters that gave up; the history is complete only from revision 5 (etcd compacted the revisions before it; no timestamp tells since when), up to revision 9\n"},
		{claim.History{Name: "d", Revision: 9, From: 5, Compacted: true, CompleteAfter: after},
			"d: 0 holds and 0 waiters that gave up; the history is complete only from revision 5 (etcd compacted the revisions before it), that is for everything after " +
				after.Local().Format(time.DateTime) + ", up to revision 9\n"},
	} {
		var b bytes.Buffer
		if err := printHistory(&b, &tc.hist, nil, 0); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("got  %q\nwant %q", b.String(), tc.want)
		}
	}
}

// TestPrintHistoryEstimates checks how estimated times and waits read.
func TestPrintHistoryEstimates(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	readAt := t0.Add(time.Hour)
	q := claim.Holder{Owner: "o", Limit: 1, QueuedAt: t0}
	hist := &claim.History{Name: "d", Revision: 9, From: 1, ReadAt: readAt, Holds: []claim.PastHold{
		{Entry: claim.Entry{CreateRevision: 2, Holder: &q, Slot: -1}, EndRevision: 3, End: claim.EndGaveUp, Waited: -1,
			Ended: claim.Span{After: t0, By: t0.Add(1500 * time.Millisecond)}},
		{Entry: claim.Entry{CreateRevision: 4, Holder: &q, Slot: 0}, Held: true, TakenRevision: 4, TakenAt: t0, EndRevision: 5,
			End: claim.EndReleasedOrExpired, Ended: claim.Span{After: t0.Add(time.Second), By: readAt}},
		{Entry: claim.Entry{CreateRevision: 6, Slot: 0}, Held: true, TakenRevision: 6, Waited: -1,
			Taken: claim.Span{By: t0.Add(2 * time.Second)}, End: claim.EndForced, ForcedBy: "root@a", EndRevision: 7, Ended: claim.Span{By: t0.Add(3 * time.Second)}},
	}}
	var b bytes.Buffer
	if err := printHistory(&b, hist, hist.Holds, 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	for i, want := range []string{
		"≤1.5s  by " + stamp(t0.Add(1500*time.Millisecond)) + "  gave up",
		"0s      after " + stamp(t0.Add(time.Second)) + "  released or expired",
		"by " + stamp(t0.Add(2*time.Second)) + "  -       by " + stamp(t0.Add(3*time.Second)) + "  forced by root@a",
	} {
		if !regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(want), "  ", " +")).MatchString(lines[2+i]) {
			t.Errorf("line %d = %q; want it to contain %q", 2+i, lines[2+i], want)
		}
	}
}
