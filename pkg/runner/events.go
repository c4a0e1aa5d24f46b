package runner

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// events writes the run's records to the event log.
type events struct {
	log       *slog.Logger
	heldSince time.Time
	name      string // the claim's
	revision  int64  // the hold's fencing token
}

func (e *events) record(visible bool, level slog.Level, event, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !visible {
		ctx = eventlog.ForMachines(ctx)
	}
	e.log.LogAttrs(ctx, level, msg, append([]slog.Attr{eventlog.Attr(event)}, attrs...)...)
}

func (e *events) held() slog.Attr {
	return slog.Int64(eventlog.KeyHeldMS, time.Since(e.heldSince).Milliseconds())
}

// notice is for what the runner says that is not an outcome (suspended, a
// terminal it could not take back).
func (e *events) notice(format string, args ...any) {
	e.record(true, slog.LevelWarn, eventlog.Notice, fmt.Sprintf(format, args...))
}

func (e *events) started(pid int) {
	e.record(false, slog.LevelInfo, eventlog.CommandStarted, fmt.Sprintf("started the command (pid %d)", pid), slog.Int(eventlog.KeyPID, pid))
}

// stopping logs why the command is being stopped: event is lost,
// timed_out or notice (processes left behind).
func (e *events) stopping(event, msg string) {
	level := slog.LevelError
	if event != eventlog.Lost {
		level = slog.LevelWarn
	}
	e.record(true, level, event, msg, e.held())
}

// renewFailed warns that no renewal has been acknowledged for silent, and
// that the command is stopped in left unless one is.
func (e *events) renewFailed(silent, left time.Duration) {
	e.record(true, slog.LevelWarn, eventlog.RenewFailed,
		fmt.Sprintf("no renewal of %s acknowledged by etcd for %v; the command is stopped in %v unless one is", e.name,
			silent.Round(100*time.Millisecond), max(left, 0).Round(100*time.Millisecond)), e.held())
}

// renewed notes that renewals are acknowledged again after renew_failed.
func (e *events) renewed() {
	e.record(true, slog.LevelInfo, eventlog.Renewed, fmt.Sprintf("renewals of %s are acknowledged again; the command goes on", e.name), e.held())
}

func (e *events) exited(st supervise.Status) {
	attrs := []slog.Attr{slog.Int(eventlog.KeyExitCode, st.ExitCode()), e.held()}
	if st.Signal != 0 {
		attrs = append(attrs, slog.String(eventlog.KeySignal, supervise.SignalName(st.Signal)))
	}
	e.record(false, slog.LevelInfo, eventlog.CommandExited, "the command "+st.String(), attrs...)
}

func (e *events) released() {
	e.record(false, slog.LevelInfo, eventlog.Released, fmt.Sprintf("released %s (fencing token %d)", e.name, e.revision), e.held())
}
