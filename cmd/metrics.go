package cmd

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// runMetrics writes a run's outcome to --metrics-file (pkg/runmetrics):
// once when the claim is taken (holding) and once when claimctl ends,
// however it ends; Run calls finish with the error claimctl exits with.
// No etcd request is involved: everything it reports was measured on the
// way.
type runMetrics struct {
	path    string
	claim   string
	started time.Time
	// success is the outcome of a run that returns no error: ok for run,
	// holding for acquire (the hold goes on after it exits).
	success  runmetrics.Outcome
	acquired time.Time
	token    int64
}

// startMetrics checks the configured metrics file, before anything touches
// etcd, and arranges for the outcome to be written there. A bad path is a
// usage error from the flag and a configuration error from elsewhere.
func (f *Factory) startMetrics(cfg *Config, name string, success runmetrics.Outcome) error {
	if cfg.MetricsFile == "" {
		return nil
	}
	if err := runmetrics.Validate(cfg.MetricsFile); err != nil {
		return valueError("metrics-file", cfg.Sources["metrics-file"], err)
	}
	f.metrics = &runMetrics{path: cfg.MetricsFile, claim: name, started: time.Now(), success: success}
	return nil
}

// metricsHolding records a verified hold and writes the holding file, so
// that a hold in progress shows (and an alert on a long hold can fire).
func (f *Factory) metricsHolding(h *claim.Hold) {
	m := f.metrics
	if m == nil {
		return
	}
	m.acquired, m.token = f.heldSince, h.Revision
	f.writeMetrics(runmetrics.Report{Claim: m.claim, Outcome: runmetrics.Holding, Started: m.started, Acquired: m.acquired, FencingToken: m.token})
}

// finishMetrics writes how claimctl ends: err is what it exits with (nil:
// success) and code its exit code.
func (f *Factory) finishMetrics(err error, code int) {
	m := f.metrics
	if m == nil {
		return
	}
	r := runmetrics.Report{Claim: m.claim, Outcome: m.outcome(err), Started: m.started, Acquired: m.acquired,
		ExitCode: code, FencingToken: m.token}
	if r.Outcome != runmetrics.Holding {
		r.Ended = time.Now()
	}
	f.writeMetrics(r)
}

// outcome classifies the error a run ends with.
func (m *runMetrics) outcome(err error) runmetrics.Outcome {
	var ee *exitError
	var se signalError
	held := !m.acquired.IsZero()
	switch {
	case err == nil:
		return m.success
	case errors.As(err, &se):
		return runmetrics.Interrupted
	case errors.Is(err, claim.ErrBusy):
		return runmetrics.Skipped
	case errors.Is(err, claim.ErrWaitTimeout), exitCode(err) == ExitTimeout:
		return runmetrics.TimedOut
	case errors.Is(err, claim.ErrNotHeld) && held:
		return runmetrics.Lost
	case errors.As(err, &ee) && ee.err == nil && held:
		// The command's own exit code, passed through.
		return runmetrics.Failed
	}
	return runmetrics.Error
}

// writeMetrics writes r; a failure is reported but does not change how
// claimctl exits: the job's outcome stands.
func (f *Factory) writeMetrics(r runmetrics.Report) {
	if err := runmetrics.Write(f.metrics.path, r); err != nil {
		f.event(true, slog.LevelWarn, eventlog.Notice, fmt.Sprintf("could not write the metrics file: %v", err))
	}
}
