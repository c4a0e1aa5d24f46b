package runmetrics

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// Outcome is how a run ended, as the value of the outcome label of
// claimctl_last_run_outcome.
type Outcome string

// The outcomes of a run. Every file has one claimctl_last_run_outcome series
// per outcome, 1 for the one that happened and 0 for the others, so that a
// query for any outcome finds a series (and 0 rather than nothing).
const (
	// OK means the claim was held and the command exited 0.
	OK Outcome = "ok"
	// Failed means the claim was held and the command exited non-zero.
	Failed Outcome = "failed"
	// Skipped means the claim was busy and -n said not to wait.
	Skipped Outcome = "skipped"
	// TimedOut means the wait of -w ran out, or the command ran past --max-runtime.
	TimedOut Outcome = "timed_out"
	// Lost means the claim could no longer be proven held while the command ran.
	Lost Outcome = "lost"
	// Interrupted means a signal stopped claimctl (and with it the command).
	Interrupted Outcome = "interrupted"
	// Error means anything else, such as etcd unreachable or a bad configuration.
	Error Outcome = "error"
	// Holding means the claim has been taken and the run has not ended yet. It is
	// written when the claim is taken, so that a live hold shows (and an
	// alert on a hold that lasts too long can fire), and it is how a
	// successful `claimctl acquire` ends.
	Holding Outcome = "holding"
)

// Outcomes returns every Outcome, in a fixed order (the order above), as a
// new slice each time: these are the values of the one-hot
// claimctl_last_run_outcome series.
func Outcomes() []Outcome {
	return []Outcome{OK, Failed, Skipped, TimedOut, Lost, Interrupted, Error, Holding}
}

// held reports whether a run with outcome o must have held the claim.
func (o Outcome) held() bool {
	return o == OK || o == Failed || o == Lost || o == Holding
}

// Report is what is known about one run of claimctl when its file is
// written.
type Report struct {
	// Claim is the claim's name; it is the claim label of every series.
	Claim string
	// Outcome is how the run ended, or Holding while it runs.
	Outcome Outcome
	// Started is when claimctl began, before any wait for the claim.
	Started time.Time
	// Acquired is when the claim was taken; zero if it never was.
	Acquired time.Time
	// Ended is when the run ended; zero while Holding.
	Ended time.Time
	// ExitCode is the exit code claimctl itself exits (or will exit) with.
	ExitCode int
	// FencingToken is the fencing token of the hold; 0 if never held.
	FencingToken int64
}

// Metric names, all gauges labelled with claim.
const (
	nameTimestamp   = "claimctl_last_run_timestamp_seconds"
	nameWait        = "claimctl_last_run_wait_seconds"
	nameHold        = "claimctl_last_run_hold_seconds"
	nameExitCode    = "claimctl_last_run_exit_code"
	nameOutcome     = "claimctl_last_run_outcome"
	nameHolding     = "claimctl_holding"
	nameHoldStart   = "claimctl_hold_start_timestamp_seconds"
	nameToken       = "claimctl_last_run_fencing_token"
	nameLastSuccess = "claimctl_last_success_timestamp_seconds"
)

// check reports why r cannot be written, or nil.
func (r Report) check() error {
	switch {
	case r.Claim == "":
		return errors.New("the report has no claim name")
	case !utf8.ValidString(r.Claim):
		return fmt.Errorf("claim name %q is not valid UTF-8, which a label value must be", r.Claim)
	case !slices.Contains(Outcomes(), r.Outcome):
		return fmt.Errorf("unknown outcome %q", r.Outcome)
	case r.Started.IsZero():
		return fmt.Errorf("outcome %s without a start time", r.Outcome)
	case r.Outcome.held() && r.Acquired.IsZero():
		return fmt.Errorf("outcome %s without the time the claim was taken", r.Outcome)
	case r.Outcome != Holding && r.Ended.IsZero():
		return fmt.Errorf("outcome %s without an end time", r.Outcome)
	}
	return nil
}

// Write writes r to the file FileFor(path, r.Claim), replacing it
// atomically. The file has these gauges, each labelled claim:
//
//	claimctl_last_run_timestamp_seconds      when the run ended (while holding: when it started)
//	claimctl_last_run_wait_seconds           how long it waited for the claim
//	claimctl_last_run_hold_seconds           how long it held the claim (0 if never, and while holding)
//	claimctl_last_run_exit_code              claimctl's exit code
//	claimctl_last_run_outcome{outcome}       1 for the run's Outcome, 0 for each of the others
//	claimctl_holding                         1 while holding, else 0
//	claimctl_hold_start_timestamp_seconds    when the claim was taken (0 if it was not)
//	claimctl_last_run_fencing_token          the hold's fencing token (0 if never held)
//	claimctl_last_success_timestamp_seconds  when the last OK run on this host ended (0 if none)
//
// For any outcome but OK, the last success is carried over from the file
// being replaced, if it has one for the same claim (see the package doc).
// Write checks path as Validate does, but without the probe file: a
// directory that cannot be written fails the write itself.
func Write(path string, r Report) error {
	if _, err := checkPath(path); err != nil {
		return err
	}
	if err := r.check(); err != nil {
		return fmt.Errorf("metrics for %s: %w", r.Claim, err)
	}
	file := FileFor(path, r.Claim)
	lastSuccess := seconds(r.Ended)
	if r.Outcome != OK {
		lastSuccess = previousSuccess(file, r.Claim)
	}
	if err := writeFile(file, families(r, lastSuccess)); err != nil {
		return fmt.Errorf("write metrics file: %w", err)
	}
	return nil
}

// families returns r's gauges as metric families, sorted by name, in the
// data model client_golang's registries gather into; the file holds these
// and nothing else. Building them directly rather than registering
// collectors keeps client_golang, and the process and Go collectors its
// default registry sets up at init, out of every claimctl invocation.
func families(r Report, lastSuccess float64) []*dto.MetricFamily {
	holding := r.Outcome == Holding
	end := r.Ended
	if holding {
		end = time.Time{}
	}
	var wait, hold time.Duration
	switch {
	case !r.Acquired.IsZero():
		wait = r.Acquired.Sub(r.Started)
		if !holding {
			hold = end.Sub(r.Acquired)
		}
	case !end.IsZero():
		wait = end.Sub(r.Started)
	}
	last := end
	if holding {
		last = r.Started
	}

	claim := &dto.LabelPair{Name: proto.String("claim"), Value: proto.String(r.Claim)}
	gauge := func(name, help string, metrics ...*dto.Metric) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum(), Metric: metrics}
	}
	value := func(v float64, labels ...*dto.LabelPair) *dto.Metric {
		return &dto.Metric{Label: append([]*dto.LabelPair{claim}, labels...), Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	}
	var outcomes []*dto.Metric
	for _, o := range Outcomes() {
		outcomes = append(outcomes, value(boolValue(o == r.Outcome), &dto.LabelPair{Name: proto.String("outcome"), Value: proto.String(string(o))}))
	}
	slices.SortFunc(outcomes, func(a, b *dto.Metric) int { return strings.Compare(a.Label[1].GetValue(), b.Label[1].GetValue()) })
	out := []*dto.MetricFamily{
		gauge(nameTimestamp, "When the last claimctl run of the claim on this host ended, or started if it still holds the claim (Unix seconds).", value(seconds(last))),
		gauge(nameWait, "How long the last claimctl run of the claim on this host waited for the claim, whether or not it got it (seconds).", value(nonNegative(wait))),
		gauge(nameHold, "How long the last claimctl run of the claim on this host held it; 0 if it did not take the claim or still holds it (seconds).", value(nonNegative(hold))),
		gauge(nameExitCode, "The exit code of the last claimctl run of the claim on this host.", value(float64(r.ExitCode))),
		gauge(nameHolding, "1 while a claimctl run on this host holds the claim (or was killed while holding it), else 0.", value(boolValue(holding))),
		gauge(nameHoldStart, "When the last claimctl run of the claim on this host took the claim; 0 if it did not (Unix seconds).", value(seconds(r.Acquired))),
		gauge(nameToken, "The fencing token of the last claimctl run of the claim on this host; 0 if it did not take the claim.", value(float64(r.FencingToken))),
		gauge(nameLastSuccess, "When the last claimctl run of the claim on this host that ran its command and saw it exit 0 ended; kept through later runs that skip or fail; 0 if none (Unix seconds).", value(lastSuccess)),
		gauge(nameOutcome, "1 for how the last claimctl run of the claim on this host ended, 0 for every other outcome.", outcomes...),
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// writeFile writes families to file in the text exposition format,
// replacing it atomically: node_exporter reads the file at any moment and
// must never see half of it. The file is readable by all (0644), as the
// textfile collector, often another user, needs.
func writeFile(file string, families []*dto.MetricFamily) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	enc := expfmt.NewEncoder(tmp, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err = enc.Encode(mf); err != nil {
			break
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	return err
}

// previousSuccess returns the last success of claim recorded in file, in
// Unix seconds, or 0 when file is missing, unreadable, malformed or about
// another claim: a report of this run is worth more than the old value. The
// value is carried as it was written, not through a time.Time, so that it
// does not drift by rounding from one run to the next.
func previousSuccess(file, claim string) float64 {
	v := previous(file, claim)[nameLastSuccess]
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// previous returns the gauges of claim recorded in file, by metric name
// (the outcome series left out), or nil when file is missing, unreadable
// or malformed.
func previous(file, claim string) map[string]float64 {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for name, mf := range families {
		if name == nameOutcome {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "claim" && lp.GetValue() == claim && m.GetGauge() != nil {
					out[name] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}

// Released records, at the time at, the end of a hold that `claimctl
// acquire --metrics-file` left holding and that `claimctl release` has just
// given back: the run becomes ok, with the hold's start and wait as the
// acquire wrote them. It changes nothing, and reports false, unless the
// file holds exactly that hold (claim and fencing token): a file about
// another hold, or none, is not this release's to rewrite.
func Released(path, claim string, token int64, at time.Time) (bool, error) {
	if _, err := checkPath(path); err != nil {
		return false, err
	}
	prev := previous(FileFor(path, claim), claim)
	if prev[nameHolding] != 1 || prev[nameToken] != float64(token) || prev[nameHoldStart] <= 0 {
		return false, nil
	}
	acquired := unix(prev[nameHoldStart])
	started := unix(prev[nameTimestamp])
	if started.IsZero() || started.After(acquired) {
		started = acquired.Add(-time.Duration(prev[nameWait] * float64(time.Second)))
	}
	err := Write(path, Report{Claim: claim, Outcome: OK, Started: started, Acquired: acquired, Ended: at, FencingToken: token})
	return err == nil, err
}

// unix is Unix seconds as a time, the zero time for 0.
func unix(v float64) time.Time {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return time.Time{}
	}
	return time.Unix(0, int64(v*1e9))
}

// seconds is t in Unix seconds, with 0 for the zero time.
func seconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func nonNegative(d time.Duration) float64 {
	return max(d, 0).Seconds()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
