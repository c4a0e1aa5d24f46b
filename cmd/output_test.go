package cmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
)

// TestConfirmationsOnTTYOnly checks the confirmations acquire, renew and
// release write through the event log: in text on a terminal only (and for
// acquire only with the token alone on stdout), in JSON always, as a record
// with its event name.
func TestConfirmationsOnTTYOnly(t *testing.T) {
	hold := &claim.Hold{Name: "deploy", Revision: 7, TTL: time.Minute, Limit: 1}
	sem := &claim.Hold{Name: "pool", Revision: 9, TTL: 30 * time.Second, Limit: 3, Slot: 2}
	tok := claim.Token{Name: "deploy", Revision: 7}
	for _, tc := range []struct {
		name    string
		confirm func(f *Factory)
		text    string // on a terminal
		event   string
	}{
		{"acquire", func(f *Factory) { f.confirmAcquired(hold, "text") }, "claimctl: acquired deploy (fencing token 7, TTL 1m0s)\n", "acquired"},
		{"acquire semaphore", func(f *Factory) { f.confirmAcquired(sem, "text") }, "claimctl: acquired pool (fencing token 9, TTL 30s, slot 2)\n", "acquired"},
		{"acquire -o json", func(f *Factory) { f.confirmAcquired(hold, "json") }, "", "acquired"},
		{"acquire -o env", func(f *Factory) { f.confirmAcquired(hold, "env") }, "", "acquired"},
		{"renew", func(f *Factory) { f.confirmRenewed(tok, time.Minute) }, "claimctl: renewed deploy (fencing token 7) for 1m0s\n", "renewed"},
		{"release", func(f *Factory) { f.confirmReleased(tok) }, "claimctl: released deploy (fencing token 7)\n", "released"},
	} {
		for _, tty := range []bool{true, false} {
			f, out, errOut := testFactory(t, nil)
			f.IO.SetTTY(tty, tty)
			tc.confirm(f)
			want := ""
			if tty {
				want = tc.text
			}
			if errOut.String() != want || out.Len() != 0 {
				t.Errorf("%s, tty %v: stderr %q, stdout %q; want stderr %q", tc.name, tty, errOut, out, want)
			}

			f, _, errOut = testFactory(t, nil)
			f.IO.SetTTY(tty, tty)
			f.LogFormatFlag = "json"
			tc.confirm(f)
			var rec map[string]any
			if err := json.Unmarshal(errOut.Bytes(), &rec); err != nil || rec["event"] != tc.event {
				t.Errorf("%s, tty %v, JSON: %q (%v), want one %q record", tc.name, tty, errOut, err, tc.event)
			}
		}
	}
}

// TestConfirmationsQuiet checks that -q silences the confirmations on a
// terminal too.
func TestConfirmationsQuiet(t *testing.T) {
	f, _, errOut := testFactory(t, nil)
	f.IO.SetTTY(true, true)
	f.Quiet = true
	f.confirmAcquired(&claim.Hold{Name: "deploy", Revision: 7, TTL: time.Minute, Limit: 1}, "text")
	f.confirmReleased(claim.Token{Name: "deploy", Revision: 7})
	if errOut.Len() != 0 {
		t.Errorf("stderr %q with -q", errOut)
	}
}

var (
	testNow    = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	testQueued = testNow.Add(-90 * time.Second)
	testTaken  = testNow.Add(-time.Minute)
)

func TestPrintClaims(t *testing.T) {
	claims := []claim.Summary{
		{Name: "deploy", Limit: 1, Waiting: 2, Holders: []claim.Entry{
			{CreateRevision: 7, Slot: 0, Holder: &claim.Holder{Owner: "ci@build1", QueuedAt: testQueued, AcquiredAt: &testTaken}},
		}},
		{Name: "pool", Limit: 3, Holders: []claim.Entry{
			{CreateRevision: 11, Slot: 0, SlotName: "db-1", Holder: &claim.Holder{Owner: "a@h", QueuedAt: testNow.Add(-5 * time.Second)}},
			{CreateRevision: 12, Slot: -1},
		}},
	}
	want := `NAME    LIMIT  OWNER                         SLOT  FENCING TOKEN  HELD  WAITING
deploy  1      ci@build1                     0     7              1m0s  2
pool    3      a@h                           db-1  11             5s    0
        3      (no metadata: etcdctl lock?)  -     12             -     
`
	for _, tty := range []bool{true, false} {
		f, out, errOut := testFactory(t, nil)
		f.IO.SetTTY(tty, tty)
		if err := printClaims(f, claims, testNow); err != nil {
			t.Fatal(err)
		}
		if out.String() != want || errOut.Len() != 0 {
			t.Errorf("tty %v: stdout\n%s\nwant\n%s\nstderr %q", tty, out, want, errOut)
		}
	}
}

// TestPrintClaimsNone checks that an empty list writes nothing to stdout,
// and says so on stderr only to a person at a terminal (not with -q).
func TestPrintClaimsNone(t *testing.T) {
	for _, tc := range []struct {
		tty, quiet bool
		stderr     string
	}{
		{true, false, "claimctl: no claims\n"},
		{false, false, ""},
		{true, true, ""},
	} {
		f, out, errOut := testFactory(t, nil)
		f.IO.SetTTY(tc.tty, tc.tty)
		f.Quiet = tc.quiet
		if err := printClaims(f, nil, testNow); err != nil {
			t.Fatal(err)
		}
		if out.Len() != 0 || errOut.String() != tc.stderr {
			t.Errorf("tty %v, quiet %v: stdout %q, stderr %q; want stderr %q", tc.tty, tc.quiet, out, errOut, tc.stderr)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   claim.Status
		want string
	}{
		{"free", claim.Status{Name: "deploy", Limit: 1}, "deploy is free\n"},
		{"mutex", claim.Status{Name: "deploy", Limit: 1,
			Holders: []claim.HolderInfo{{Entry: claim.Entry{CreateRevision: 7, Lease: 0xab, Slot: 0,
				Holder: &claim.Holder{Owner: "ci@build1", Note: "v1\t2", QueuedAt: testQueued, AcquiredAt: &testTaken}}, Remaining: 42 * time.Second}},
			Waiters: []claim.Entry{{Lease: 0xcd, Slot: -1, Holder: &claim.Holder{Owner: "me@here", QueuedAt: testNow.Add(-3 * time.Second)}}},
		}, `deploy (mutex): 1 holder, 1 waiting
            OWNER      SLOT  FENCING TOKEN  LEASE  HELD/WAITED  EXPIRES IN  NOTE
holder      ci@build1  0     7              ab     1m0s         42s         v1 2
waiting #1  me@here    -     -              cd     3s           -           -
`},
		{"semaphore, no metadata, expiry unknown", claim.Status{Name: "pool", Limit: 2,
			Holders: []claim.HolderInfo{
				{Entry: claim.Entry{CreateRevision: 3, Lease: 1, Slot: 1, SlotName: "db-2"}, Remaining: -1},
				{Entry: claim.Entry{CreateRevision: 4, Lease: 2, Slot: -1, Holder: &claim.Holder{Owner: "x"}}, Remaining: time.Second},
			}}, `pool (semaphore, limit 2): 2 holders, 0 waiting
        OWNER                         SLOT  FENCING TOKEN  LEASE  HELD/WAITED  EXPIRES IN  NOTE
holder  (no metadata: etcdctl lock?)  db-2  3              1      -            ?           -
holder  x                             -     4              2      -            1s          -
`},
	} {
		var b bytes.Buffer
		if err := printStatus(&b, tc.st, testNow); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}
}

// TestColorFromInjectedEnv checks that --color auto decides from the
// terminal and from NO_COLOR as the factory's Getenv reports it.
func TestColorFromInjectedEnv(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   map[string]string
		tty   bool
		color bool
	}{
		{[]string{"list"}, nil, true, true},
		{[]string{"list"}, map[string]string{"NO_COLOR": "1"}, true, false},
		{[]string{"list"}, nil, false, false},
		{[]string{"--color", "always", "list"}, map[string]string{"NO_COLOR": "1"}, false, true},
		{[]string{"--color", "never", "list"}, nil, true, false},
		{[]string{"list"}, map[string]string{"CLAIMCTL_COLOR": "always"}, false, true},
	} {
		f, _, _ := testFactory(t, tc.env)
		f.IO.SetTTY(tc.tty, tc.tty)
		var got *ListOptions
		if err := execSub(t, f, NewCmdList(f, func(o *ListOptions) error { got = o; return nil }), tc.args...); err != nil || got == nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if _, err := f.Config(got.cmd); err != nil {
			t.Fatal(err)
		}
		if f.IO.ColorErr() != tc.color || f.IO.ColorOut() != tc.color {
			t.Errorf("%q, env %v, tty %v: colour stderr %v, stdout %v; want %v", tc.args, tc.env, tc.tty, f.IO.ColorErr(), f.IO.ColorOut(), tc.color)
		}
	}
}

// TestHolderOwnerFromInjectedEnv checks that the default owner is $USER as
// the factory's Getenv reports it.
func TestHolderOwnerFromInjectedEnv(t *testing.T) {
	f, _, _ := testFactory(t, map[string]string{"USER": "alice"})
	var a acquireFlags
	if h := a.holder(f.Getenv); !strings.HasPrefix(h.Owner, "alice@") {
		t.Errorf("owner %q, want alice@HOST", h.Owner)
	}
	if by := adminName(f.Getenv); !strings.HasPrefix(by, "alice@") {
		t.Errorf("forced by %q, want alice@HOST", by)
	}
	a.Owner = "ci"
	if h := a.holder(f.Getenv); h.Owner != "ci" {
		t.Errorf("owner %q, want --owner's ci", h.Owner)
	}
}

// TestWaitReporter checks the waiting message: on a terminal a status line
// redrawn in place and cleared when the wait ends; elsewhere plain lines; in
// JSON a waiting record; nothing with -q.
func TestWaitReporter(t *testing.T) {
	q := claim.QueueState{Ahead: 2, Limit: 1, Holders: []claim.Entry{{Holder: &claim.Holder{Owner: "ci@build1"}}}}
	const text = "claimctl: waiting for deploy (0s): held by ci@build1; position 2 in queue"
	for _, tc := range []struct {
		name       string
		tty, quiet bool
		json       bool
		check      func(stderr string) bool
		want       string
	}{
		{"terminal", true, false, false, func(s string) bool {
			return strings.HasPrefix(s, "\r\033[K"+text) && strings.HasSuffix(s, "\r\033[K") && !strings.Contains(s, "\n")
		}, `"\r\033[K` + text + `...\r\033[K"`},
		{"not a terminal", false, false, false, func(s string) bool {
			return strings.HasPrefix(s, text+"\n") && !strings.Contains(s, "\r")
		}, text + "\\n..."},
		{"quiet", true, true, false, func(s string) bool { return s == "" }, "nothing"},
		{"json", true, false, true, func(s string) bool {
			var rec map[string]any
			return json.Unmarshal([]byte(s), &rec) == nil && rec["event"] == "waiting" && rec["ahead"] == float64(2) && rec["held_by"] == "ci@build1"
		}, "one waiting record"},
	} {
		f, out, errOut := testFactory(t, nil)
		f.IO.SetTTY(tc.tty, tc.tty)
		f.Quiet = tc.quiet
		if tc.json {
			f.LogFormatFlag = "json"
		}
		w := newWaitReporter(f, "deploy")
		w.report(q)
		w.finish()
		if !tc.check(errOut.String()) || out.Len() != 0 {
			t.Errorf("%s: stderr %q, stdout %q; want %s", tc.name, errOut, out, tc.want)
		}
	}
}

// TestPrintDoctorMarks checks doctor's marks: ✓/✗ on a terminal, ok/FAIL
// elsewhere, coloured only when asked.
func TestPrintDoctorMarks(t *testing.T) {
	rep := &doctorReport{
		Settings: []settingReport{{Key: "endpoints", Value: "127.0.0.1:2379", Source: "default"}, {Key: "user", Source: "default"}},
		Checks: []check{
			{Area: "endpoints", Name: "127.0.0.1:2379", OK: true, Detail: "healthy"},
			{Area: "auth", Name: "login", OK: false, Detail: "refused", Fix: "check --user"},
		},
	}
	for _, tc := range []struct {
		colored, tty bool
		ok, fail     string
	}{
		{false, false, "  ok   127.0.0.1:2379: healthy\n", "  FAIL login: refused\n"},
		{false, true, "  ✓ 127.0.0.1:2379: healthy\n", "  ✗ login: refused\n"},
		{true, true, "  \x1b[32m✓\x1b[0m 127.0.0.1:2379: healthy\n", "  \x1b[31;1m✗\x1b[0;22m login: refused\n"},
	} {
		var b bytes.Buffer
		printDoctor(&b, tc.colored, tc.tty, rep)
		s := b.String()
		for _, want := range []string{"Settings\n", "  user                      -", tc.ok, tc.fail, "       fix: check --user\n", "claimctl will not work as configured"} {
			if !strings.Contains(s, want) {
				t.Errorf("colored %v, tty %v: no %q in\n%s", tc.colored, tc.tty, want, s)
			}
		}
	}
}
