// Package eventlog is claimctl's voice on stderr: one *slog.Logger through
// which every message goes, as the plain "claimctl: ..." lines people read
// (text) or as one JSON object per line for log pipelines (json, slog's own
// JSON handler). Each record carries an event name, so that a pipeline can
// tell a skipped cron run from a lost claim without parsing messages; the
// names and fields are a public schema (docs/json.md "Event log").
package eventlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/fatih/color"

	"github.com/claimctl/claimctl/pkg/iostreams"
)

// Event names: the value of the "event" field.
const (
	Waiting        = "waiting"         // the claim is busy; waiting in line starts
	QueueChanged   = "queue_changed"   // the holders or the number ahead changed while waiting
	Acquired       = "acquired"        // the hold is verified
	Skipped        = "skipped"         // busy with -n (or held by an enclosing run): not waited for
	TimedOut       = "timed_out"       // the -w wait ran out, or --max-runtime stopped the command
	RenewFailed    = "renew_failed"    // renewals went unacknowledged for a fifth of the TTL
	Renewed        = "renewed"         // renewals are acknowledged again after renew_failed; also renew's success
	Lost           = "lost"            // the claim can no longer be proven held
	CommandStarted = "command_started" // run's command is running
	CommandExited  = "command_exited"  // run's command and its whole group have ended
	Released       = "released"        // the claim was given back (by its holder, or forced)
	Notice         = "notice"          // anything else worth saying (a refused Ctrl-Z, a leftover process)
	Error          = "error"           // claimctl failed; the last record, with exit_code
)

// Field names, beyond slog's time, level and msg.
const (
	KeyEvent        = "event"
	KeyClaim        = "claim"
	KeyOwner        = "owner"
	KeyHost         = "host"
	KeyFencingToken = "fencing_token"
	KeySlot         = "slot"
	KeyWaitedMS     = "waited_ms"
	KeyHeldMS       = "held_ms"
	KeyExitCode     = "exit_code"
	KeySignal       = "signal"
	KeyPID          = "pid"
	KeyAhead        = "ahead"
	KeyHeldBy       = "held_by"
	KeyForcedBy     = "forced_by"
)

// Formats accepted by New.
const (
	Text = "text"
	JSON = "json"
)

// Formats lists the accepted formats, for messages.
var Formats = []string{Text, JSON}

// Options shape a logger.
type Options struct {
	// Quiet drops records below Warn (-q): errors and warnings remain.
	Quiet bool
	// Color paints the text prefix of errors.
	Color bool
}

// New returns the logger for format (Text or JSON) writing to w.
func New(w io.Writer, format string, opts Options) *slog.Logger {
	level := slog.LevelInfo
	if opts.Quiet {
		level = slog.LevelWarn
	}
	if format == JSON {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(&textHandler{w: w, mu: &sync.Mutex{}, level: level, color: opts.Color})
}

// Attr is the "event" attribute for name.
func Attr(name string) slog.Attr { return slog.String(KeyEvent, name) }

type machinesOnlyKey struct{}

// ForMachines marks the records logged with the returned context as facts
// for log pipelines only: the text handler leaves them out. They are facts
// a person at a terminal sees anyway (the command's output starts and
// stops) or sees in the live status line, which is drawn apart from the log
// in text mode. The JSON handler writes them like any other record.
func ForMachines(ctx context.Context) context.Context {
	return context.WithValue(ctx, machinesOnlyKey{}, true)
}

func forMachines(ctx context.Context) bool {
	v, _ := ctx.Value(machinesOnlyKey{}).(bool)
	return v
}

// textHandler prints each record as "claimctl: MESSAGE", the form claimctl
// has always used; the attributes are for JSON only.
type textHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	level slog.Level
	color bool
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(ctx context.Context, r slog.Record) error {
	if forMachines(ctx) {
		return nil
	}
	prefix := "claimctl:"
	if r.Level >= slog.LevelError {
		prefix = iostreams.Paint(h.color, prefix, color.FgRed, color.Bold)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintf(h.w, "%s %s\n", prefix, r.Message)
	return err
}

func (h *textHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h *textHandler) WithGroup(string) slog.Handler { return h }
