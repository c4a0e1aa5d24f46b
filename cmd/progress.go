package cmd

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/iostreams"
)

// ciInterval is how often a waiter repeats its status when stderr is not a
// terminal (CI logs): often enough to show it is alive, rarely enough not to
// flood the log.
const ciInterval = 30 * time.Second

// waitReporter tells people why claimctl is waiting: who holds the claim,
// for how long, and how many are ahead. On a terminal it keeps one status
// line redrawn in place every second; elsewhere (CI logs) it prints a plain
// line when waiting starts, whenever the queue changes, and every 30s; -q
// silences it. With --log-format json it logs a waiting event when waiting
// starts and a queue_changed event on each change instead, and draws
// nothing.
type waitReporter struct {
	f     *Factory
	io    *iostreams.IOStreams
	name  string
	quiet bool
	tty   bool
	json  bool
	seen  bool // json: waiting was logged

	mu      sync.Mutex
	started time.Time
	state   claim.QueueState
	drawn   bool // a status line is on the terminal
	stop    chan struct{}
	done    chan struct{}
}

func newWaitReporter(f *Factory, name string) *waitReporter {
	return &waitReporter{f: f, io: f.IO, name: name, quiet: f.Quiet, tty: f.IO.IsStderrTTY(), json: f.jsonLog()}
}

// report is the claim.AcquireOptions.Progress callback.
func (w *waitReporter) report(q claim.QueueState) {
	if w.json {
		w.logQueue(q)
		return
	}
	if w.quiet {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state = q
	if w.stop == nil {
		w.started = time.Now()
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.loop()
	}
	w.printLocked()
}

func (w *waitReporter) loop() {
	defer close(w.done)
	interval := ciInterval
	if w.tty {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			w.printLocked()
			w.mu.Unlock()
		}
	}
}

func (w *waitReporter) printLocked() {
	now := time.Now()
	elapsed := now.Sub(w.started).Round(time.Second)
	text := fmt.Sprintf("waiting for %s (%s): %s", w.name, elapsed, describeQueue(w.state, now))
	if w.tty {
		prefix := iostreams.Paint(w.io.ColorErr(), "claimctl:", color.FgYellow)
		fmt.Fprintf(w.io.ErrOut, "\r\033[K%s %s", prefix, text)
		w.drawn = true
		return
	}
	fmt.Fprintf(w.io.ErrOut, "claimctl: %s\n", text)
}

// logQueue logs where the waiter stands (JSON only: the text log has the
// status line).
func (w *waitReporter) logQueue(q claim.QueueState) {
	event := eventlog.QueueChanged
	if !w.seen {
		event, w.seen = eventlog.Waiting, true
	}
	attrs := []slog.Attr{slog.Int(eventlog.KeyAhead, q.Ahead)}
	if len(q.Holders) > 0 {
		attrs = append(attrs, slog.String(eventlog.KeyHeldBy, q.Holders[0].OwnerString()))
	}
	w.f.event(false, slog.LevelInfo, event, fmt.Sprintf("waiting for %s: %s", w.name, describeQueue(q, time.Now())), attrs...)
}

// done stops the reporter and clears the status line, so that whatever is
// printed next starts on a clean line.
func (w *waitReporter) finish() {
	w.mu.Lock()
	stop := w.stop
	w.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drawn {
		fmt.Fprint(w.io.ErrOut, "\r\033[K")
		w.drawn = false
	}
}

// describeQueue says who holds a claim and where a waiter stands.
func describeQueue(q claim.QueueState, now time.Time) string {
	var parts []string
	if len(q.Holders) > 0 {
		h := q.Holders[0]
		s := "held by " + h.OwnerString()
		if h.Holder != nil {
			since := h.Holder.QueuedAt
			if h.Holder.AcquiredAt != nil {
				since = *h.Holder.AcquiredAt
			}
			if !since.IsZero() {
				s += fmt.Sprintf(" for %s", now.Sub(since).Round(time.Second))
			}
		}
		if len(q.Holders) > 1 {
			s += fmt.Sprintf(" and %d more", len(q.Holders)-1)
		}
		parts = append(parts, s)
	}
	waiting := max(q.Ahead-len(q.Holders), 0)
	parts = append(parts, fmt.Sprintf("position %d in queue", waiting+1))
	return strings.Join(parts, "; ")
}
