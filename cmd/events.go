package cmd

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// Log is this invocation's event log (pkg/eventlog), with what is known
// about the claim so far (describe) on every record. Its format comes from
// the configuration once that is loaded; before that (a usage error, a bad
// config file) from --log-format or CLAIMCTL_LOG_FORMAT, so that a job that
// asked for JSON gets JSON even for those.
func (f *Factory) Log() *slog.Logger {
	format := f.logFormat()
	if f.log == nil || format != f.logFormatUsed || f.IO.ColorErr() != f.logColor {
		f.log = eventlog.New(f.IO.ErrOut, format, eventlog.Options{Quiet: f.Quiet, Color: f.IO.ColorErr()})
		f.logFormatUsed, f.logColor = format, f.IO.ColorErr()
	}
	if len(f.logFields) == 0 {
		return f.log
	}
	return f.log.With(f.logFields...)
}

func (f *Factory) logFormat() string {
	if f.cfg != nil {
		return f.cfg.LogFormat
	}
	for _, v := range []string{f.LogFormatFlag, f.Getenv("CLAIMCTL_LOG_FORMAT")} {
		if slices.Contains(eventlog.Formats, v) && v != eventlog.Text {
			return v
		}
	}
	return eventlog.Text
}

// jsonLog reports whether stderr carries JSON records rather than text.
func (f *Factory) jsonLog() bool { return f.logFormat() == eventlog.JSON }

// describe adds fields to every later record of the log, replacing earlier
// values of the same keys: the claim, its owner and host as soon as they
// are known, the fencing token and slot once held.
func (f *Factory) describe(attrs ...slog.Attr) {
	for _, a := range attrs {
		i := slices.IndexFunc(f.logFields, func(v any) bool { return v.(slog.Attr).Key == a.Key })
		if i >= 0 {
			f.logFields[i] = a
		} else {
			f.logFields = append(f.logFields, a)
		}
	}
}

// describeContender names the claim and who contends for it.
func (f *Factory) describeContender(name string, h claim.Holder) {
	f.describe(slog.String(eventlog.KeyClaim, name), slog.String(eventlog.KeyOwner, h.Owner), slog.String(eventlog.KeyHost, h.Host))
}

// describeHold adds a verified hold's fencing token and, for a semaphore, its
// slot.
func (f *Factory) describeHold(h *claim.Hold) {
	f.describe(slog.Int64(eventlog.KeyFencingToken, h.Revision))
	if h.Limit > 1 || h.SlotName != "" {
		f.describe(slog.String(eventlog.KeySlot, slotString(h.Slot, h.SlotName)))
	}
}

// event logs one record. visible says whether the text log prints it:
// records that are not visible are for log pipelines (JSON) only.
func (f *Factory) event(visible bool, level slog.Level, event, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !visible {
		ctx = eventlog.ForMachines(ctx)
	}
	f.Log().LogAttrs(ctx, level, msg, append([]slog.Attr{eventlog.Attr(event)}, attrs...)...)
}

// ms is a duration as the integer milliseconds of the *_ms fields.
func ms(key string, d time.Duration) slog.Attr { return slog.Int64(key, d.Milliseconds()) }

// logExit writes claimctl's last record: the error it ends with, once, as
// the event that names what happened (skipped, timed_out, lost, or error)
// with the exit code. usage adds the pointer to --help in text. An error
// that is quiet in text (-E 0, or the command's own exit code, which
// command_exited has logged already) is logged in JSON only, and only
// when it says something command_exited did not.
func (f *Factory) logExit(err error, code int, usage bool) {
	event, level := exitEvent(err, code)
	attrs := []slog.Attr{slog.Int(eventlog.KeyExitCode, code)}
	var se signalError
	if errors.As(err, &se) {
		attrs = append(attrs, slog.String(eventlog.KeySignal, supervise.SignalName(se.sig)))
	}
	if f.waitStarted != (time.Time{}) && (event == eventlog.Skipped || event == eventlog.TimedOut && f.heldSince.IsZero()) {
		attrs = append(attrs, ms(eventlog.KeyWaitedMS, time.Since(f.waitStarted)))
	}
	if !f.heldSince.IsZero() && event != eventlog.Skipped {
		attrs = append(attrs, ms(eventlog.KeyHeldMS, time.Since(f.heldSince)))
	}
	msg := err.Error()
	visible := true
	switch {
	case isQuiet(err) && (event == eventlog.Error || !f.jsonLog()):
		return
	case isQuiet(err):
		level, visible = slog.LevelInfo, false
	case usage && !f.jsonLog():
		msg += "\nRun 'claimctl --help' for usage."
	}
	f.event(visible, level, event, msg, attrs...)
}

// exitEvent names the outcome an error ends claimctl with.
func exitEvent(err error, code int) (string, slog.Level) {
	var se signalError
	switch {
	case errors.As(err, &se):
		return eventlog.Error, slog.LevelError
	case errors.Is(err, claim.ErrBusy):
		return eventlog.Skipped, slog.LevelWarn
	case errors.Is(err, claim.ErrWaitTimeout), code == ExitTimeout:
		return eventlog.TimedOut, slog.LevelWarn
	case errors.Is(err, claim.ErrNotHeld):
		return eventlog.Lost, slog.LevelError
	}
	return eventlog.Error, slog.LevelError
}
