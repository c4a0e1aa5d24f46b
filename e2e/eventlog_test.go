//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// logRecord is one line of --log-format json, as docs/json.md "Event log"
// documents it, written out independently of the product's code so that an
// accidental schema change fails here. Pointers tell absent from zero.
type logRecord struct {
	Time         time.Time `json:"time"`
	Level        string    `json:"level"`
	Msg          string    `json:"msg"`
	Event        string    `json:"event"`
	Claim        string    `json:"claim"`
	Owner        string    `json:"owner"`
	Host         string    `json:"host"`
	FencingToken *int64    `json:"fencing_token"`
	Slot         *string   `json:"slot"`
	WaitedMS     *int64    `json:"waited_ms"`
	HeldMS       *int64    `json:"held_ms"`
	ExitCode     *int      `json:"exit_code"`
	Signal       string    `json:"signal"`
	PID          int       `json:"pid"`
	Ahead        *int      `json:"ahead"`
	HeldBy       string    `json:"held_by"`
	ForcedBy     string    `json:"forced_by"`
}

var logEvents = []string{"waiting", "queue_changed", "acquired", "skipped", "timed_out", "renew_failed", "renewed", "lost",
	"command_started", "command_exited", "released", "notice", "error"}

// parseLog decodes every line of stderr strictly: each must be one JSON
// object of the documented schema, with a known event and level, and the
// fields each event promises.
func parseLog(t *testing.T, who, stderr string) []logRecord {
	t.Helper()
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		line := sc.Bytes()
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var r logRecord
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: stderr line does not match docs/json.md \"Event log\": %v\n%s\nwhole stderr:\n%s", who, err, line, stderr)
		}
		if err := r.check(); err != nil {
			t.Fatalf("%s: %v\n%s\nwhole stderr:\n%s", who, err, line, stderr)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no log records on stderr", who)
	}
	return out
}

// check holds a record to the fields its event promises.
func (r logRecord) check() error {
	switch {
	case time.Since(r.Time) > 5*time.Minute || r.Time.After(time.Now().Add(time.Minute)):
		return fmt.Errorf("time %v is not now", r.Time)
	case !slices.Contains([]string{"INFO", "WARN", "ERROR"}, r.Level):
		return fmt.Errorf("level %q", r.Level)
	case !slices.Contains(logEvents, r.Event):
		return fmt.Errorf("unknown event %q", r.Event)
	case r.Msg == "" || strings.Contains(r.Msg, "\n"):
		return fmt.Errorf("msg %q must be one non-empty line", r.Msg)
	}
	claimEvent := r.Event != "error" || r.Claim != ""
	if claimEvent && (r.Claim == "" || !strings.HasPrefix(r.Owner, "e2e@") || r.Host == "") {
		return fmt.Errorf("event %s without claim, owner e2e@HOST and host", r.Event)
	}
	held := slices.Contains([]string{"acquired", "command_started", "command_exited", "released", "renew_failed", "renewed"}, r.Event)
	if held && (r.FencingToken == nil || *r.FencingToken <= 0) {
		return fmt.Errorf("event %s without fencing_token", r.Event)
	}
	need := map[string][]string{
		"waiting":         {"ahead"},
		"queue_changed":   {"ahead"},
		"acquired":        {"waited_ms"},
		"skipped":         {"waited_ms", "exit_code"},
		"command_started": {"pid"},
		"command_exited":  {"exit_code", "held_ms"},
		"released":        {"held_ms"},
		"renew_failed":    {"held_ms"},
		"error":           {"exit_code"},
	}
	for _, f := range need[r.Event] {
		missing := map[string]bool{"ahead": r.Ahead == nil, "waited_ms": r.WaitedMS == nil, "exit_code": r.ExitCode == nil,
			"pid": r.PID <= 0, "held_ms": r.HeldMS == nil}[f]
		if missing {
			return fmt.Errorf("event %s without %s", r.Event, f)
		}
	}
	return nil
}

// events is the sequence of event names.
func events(rs []logRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Event)
	}
	return out
}

func find(t *testing.T, rs []logRecord, event string) logRecord {
	t.Helper()
	for _, r := range rs {
		if r.Event == event {
			return r
		}
	}
	t.Fatalf("no %s record in %v", event, events(rs))
	return logRecord{}
}

func wantEvents(t *testing.T, who string, rs []logRecord, want ...string) {
	t.Helper()
	if got := events(rs); !slices.Equal(got, want) {
		t.Fatalf("%s: events %v, want %v", who, got, want)
	}
}

// TestEventLogContendedRun: a holder and a waiter log every step, with
// rising fencing tokens, the wait and the hold timed, and the command's
// exit status.
func TestEventLogContendedRun(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	a := startClaimctl(t, endpoints, []string{"CLAIMCTL_LOG_FORMAT=json"}, "run", "nightly", "--", "sh", "-c", "sleep 1; exit 3")
	waitFor(t, 10*time.Second, "A to hold the claim", func() bool { return strings.Contains(statusJSON(t, endpoints, "nightly"), `"holders": [`+"\n") })
	b := startClaimctl(t, endpoints, nil, "--log-format", "json", "run", "nightly", "--", "true")
	if code := a.wait(20 * time.Second); code != 3 {
		t.Fatalf("A exit %d, want the command's 3; stderr:\n%s", code, a.stderr)
	}
	if code := b.wait(20 * time.Second); code != 0 {
		t.Fatalf("B exit %d; stderr:\n%s", code, b.stderr)
	}
	ra, rb := parseLog(t, "A", a.stderr.String()), parseLog(t, "B", b.stderr.String())
	wantEvents(t, "A", ra, "acquired", "command_started", "command_exited", "released")
	wantEvents(t, "B", rb, "waiting", "acquired", "command_started", "command_exited", "released")

	exited := find(t, ra, "command_exited")
	if *exited.ExitCode != 3 || exited.Signal != "" || *exited.HeldMS < 900 {
		t.Fatalf("A's command_exited = %+v; want exit_code 3 after about 1s held", exited)
	}
	if w := find(t, rb, "waiting"); *w.Ahead != 1 || !strings.HasPrefix(w.HeldBy, "e2e@") || w.FencingToken != nil {
		t.Fatalf("B's waiting = %+v; want ahead 1, held_by A's owner, no fencing token yet", w)
	}
	acqA, acqB := find(t, ra, "acquired"), find(t, rb, "acquired")
	if *acqB.FencingToken <= *acqA.FencingToken || *acqB.WaitedMS < 300 || *acqA.WaitedMS > 5000 {
		t.Fatalf("acquired: A %+v, B %+v; want B's token above A's and B to have waited", acqA, acqB)
	}
	if r := find(t, rb, "released"); r.Level != "INFO" || *r.FencingToken != *acqB.FencingToken {
		t.Fatalf("B's released = %+v", r)
	}
}

// TestEventLogSkippedAndTimedOut: -n on a busy claim logs skipped (INFO
// with -E 0, WARN otherwise) with claimctl's exit code, and an expired -w
// wait logs waiting, then timed_out.
func TestEventLogSkippedAndTimedOut(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	holder := startClaimctl(t, endpoints, nil, "run", "busy", "--", "sleep", "30")
	waitFor(t, 10*time.Second, "the holder", func() bool { return strings.Contains(statusJSON(t, endpoints, "busy"), `"holders": [`+"\n") })
	json := []string{"CLAIMCTL_LOG_FORMAT=json"}

	quiet := startClaimctl(t, endpoints, json, "run", "-n", "-E", "0", "busy", "--", "true")
	if code := quiet.wait(10 * time.Second); code != 0 {
		t.Fatalf("-n -E 0 exit %d", code)
	}
	rs := parseLog(t, "-n -E 0", quiet.stderr.String())
	wantEvents(t, "-n -E 0", rs, "skipped")
	if rs[0].Level != "INFO" || *rs[0].ExitCode != 0 || !strings.Contains(rs[0].Msg, "busy") {
		t.Fatalf("-n -E 0: %+v; want an INFO skipped with exit_code 0", rs[0])
	}

	loud := startClaimctl(t, endpoints, json, "acquire", "-n", "busy")
	if code := loud.wait(10 * time.Second); code != 75 {
		t.Fatalf("acquire -n exit %d", code)
	}
	rs = parseLog(t, "acquire -n", loud.stderr.String())
	wantEvents(t, "acquire -n", rs, "skipped")
	if rs[0].Level != "WARN" || *rs[0].ExitCode != 75 {
		t.Fatalf("acquire -n: %+v; want a WARN skipped with exit_code 75", rs[0])
	}

	timed := startClaimctl(t, endpoints, json, "run", "-w", "700ms", "busy", "--", "true")
	if code := timed.wait(10 * time.Second); code != 75 {
		t.Fatalf("-w exit %d", code)
	}
	rs = parseLog(t, "-w", timed.stderr.String())
	wantEvents(t, "-w", rs, "waiting", "timed_out")
	if r := rs[1]; *r.ExitCode != 75 || r.WaitedMS == nil || *r.WaitedMS < 700 {
		t.Fatalf("-w: timed_out %+v; want exit_code 75 after waiting at least 700ms", r)
	}

	bad := startClaimctl(t, endpoints, json, "run", "--bogus", "busy", "--", "true")
	if code := bad.wait(10 * time.Second); code != 64 {
		t.Fatalf("--bogus exit %d", code)
	}
	rs = parseLog(t, "--bogus", bad.stderr.String())
	wantEvents(t, "--bogus", rs, "error")
	if *rs[0].ExitCode != 64 || rs[0].Level != "ERROR" || !strings.Contains(rs[0].Msg, "--bogus") {
		t.Fatalf("--bogus: %+v", rs[0])
	}
	_ = holder.cmd.Process.Kill()
}

// TestEventLogLost: a forced release and a network cut each end a run with
// lost (detected, while the command is stopped), command_exited with the
// signal, and lost again as the last record, with exit code 76. The cut
// is announced by renew_failed before the command is stopped.
func TestEventLogLost(t *testing.T) {
	m := etcdtest.Start(t)
	json := []string{"CLAIMCTL_LOG_FORMAT=json"}

	t.Run("forced", func(t *testing.T) {
		dir := t.TempDir() + "/"
		j := startClaimctl(t, m.Endpoints(), json, "run", "--grace", "1s", "--metrics-file", dir, "forced", "--", "sleep", "30")
		waitFor(t, 10*time.Second, "the holder", func() bool { return strings.Contains(statusJSON(t, m.Endpoints(), "forced"), `"holders": [`+"\n") })
		if code := startClaimctl(t, m.Endpoints(), nil, "release", "--force", "forced").wait(10 * time.Second); code != 0 {
			t.Fatalf("release --force exit %d", code)
		}
		if code := j.wait(15 * time.Second); code != 76 {
			t.Fatalf("exit %d, want 76; stderr:\n%s", code, j.stderr)
		}
		rs := parseLog(t, "forced", j.stderr.String())
		wantEvents(t, "forced", rs, "acquired", "command_started", "lost", "command_exited", "lost")
		checkLost(t, rs)
		if !strings.Contains(rs[2].Msg, "--force") {
			t.Fatalf("the lost record does not say the claim was removed by force: %q", rs[2].Msg)
		}
		// The metrics file says the same: lost, exit code 76, no longer holding.
		g := promGauges(t, dir+"claimctl_forced.prom")
		for series, want := range map[string]float64{
			`claimctl_last_run_outcome{claim="forced",outcome="lost"}`: 1, `claimctl_last_run_outcome{claim="forced",outcome="ok"}`: 0,
			`claimctl_last_run_exit_code{claim="forced"}`: 76, `claimctl_holding{claim="forced"}`: 0,
			`claimctl_last_run_fencing_token{claim="forced"}`: float64(*rs[0].FencingToken),
		} {
			if got, ok := g[series]; !ok || got != want {
				t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
			}
		}
	})

	t.Run("network cut", func(t *testing.T) {
		proxy := etcdtest.NewProxy(t, m.Endpoints()[0])
		j := startClaimctl(t, []string{proxy.Endpoint()}, json, "run", "--ttl", "3s", "--grace", "1s", "cut", "--", "sleep", "30")
		waitFor(t, 10*time.Second, "the holder", func() bool { return strings.Contains(statusJSON(t, m.Endpoints(), "cut"), `"holders": [`+"\n") })
		proxy.Blackhole()
		if code := j.wait(15 * time.Second); code != 76 {
			t.Fatalf("exit %d, want 76; stderr:\n%s", code, j.stderr)
		}
		rs := parseLog(t, "cut", j.stderr.String())
		wantEvents(t, "cut", rs, "acquired", "command_started", "renew_failed", "lost", "command_exited", "lost")
		checkLost(t, rs)
		if rf := rs[2]; rf.Level != "WARN" || !strings.Contains(rf.Msg, "no renewal") {
			t.Fatalf("renew_failed = %+v", rf)
		}
	})
}

// checkLost checks the records after a loss: the detection (ERROR, with
// the time held), the command killed by TERM (or KILL), and the last
// record with exit code 76.
func checkLost(t *testing.T, rs []logRecord) {
	t.Helper()
	n := len(rs)
	detected, exited, last := rs[n-3], rs[n-2], rs[n-1]
	if detected.Level != "ERROR" || detected.HeldMS == nil || detected.FencingToken == nil {
		t.Fatalf("lost (detected) = %+v", detected)
	}
	if exited.Signal != "TERM" && exited.Signal != "KILL" {
		t.Fatalf("command_exited = %+v; want it killed by TERM or KILL", exited)
	}
	if last.Level != "ERROR" || last.ExitCode == nil || *last.ExitCode != 76 || last.HeldMS == nil {
		t.Fatalf("last record = %+v; want lost with exit_code 76 and held_ms", last)
	}
}

// promGauges parses a textfile with expfmt into "name{label=...}" -> value.
func promGauges(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s is not in the text exposition format: %v", path, err)
	}
	out := map[string]float64{}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}
