//go:build linux

package runner_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/boottime"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/runner"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// errFakeNotHeld is the fake hold's Config.NotHeld.
var errFakeNotHeld = errors.New("fake claim not held")

// fakeHold is a runner.Hold with no etcd behind it: granted when made, and,
// once kept, renewed every TTL/10 unless silenced; a test loses it with
// lose.
type fakeHold struct {
	ttl     time.Duration
	renewed chan struct{}
	lost    chan struct{}

	mu       sync.Mutex
	lastAck  boottime.Instant
	silent   bool // renewals go unacknowledged
	lostErr  error
	released int
	recorded int // RecordAcquired calls
}

func newFakeHold(ttl time.Duration) *fakeHold {
	return &fakeHold{ttl: ttl, renewed: make(chan struct{}, 1), lost: make(chan struct{}), lastAck: boottime.Now()}
}

func (f *fakeHold) Expiry() boottime.Instant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAck.Add(f.ttl)
}

func (f *fakeHold) Keep(ctx context.Context) {
	go func() {
		t := time.NewTicker(f.ttl / 10)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-f.lost:
				return
			case <-t.C:
			}
			f.mu.Lock()
			ok := !f.silent
			if ok {
				f.lastAck = boottime.Now()
			}
			f.mu.Unlock()
			if ok {
				select {
				case f.renewed <- struct{}{}:
				default:
				}
			}
		}
	}()
}

func (f *fakeHold) Renewed() <-chan struct{}     { return f.renewed }
func (f *fakeHold) Lost() <-chan struct{}        { return f.lost }
func (f *fakeHold) Verify(context.Context) error { return f.LostReason() }

func (f *fakeHold) RecordAcquired(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded++
	return nil
}

func (f *fakeHold) records() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recorded
}

func (f *fakeHold) LostReason() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lostErr
}

func (f *fakeHold) Release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released++
	if f.lostErr != nil {
		return fmt.Errorf("release fake: %w", f.lostErr)
	}
	return nil
}

// silence stops acknowledging renewals, as a cut from etcd would.
func (f *fakeHold) silence() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silent = true
}

// lose marks the hold lost, as a release --force would.
func (f *fakeHold) lose() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lostErr == nil {
		f.lostErr = fmt.Errorf("%w: the fake's key was deleted", errFakeNotHeld)
		close(f.lost)
	}
}

func (f *fakeHold) releases() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.released
}

// eventRecorder is a slog.Handler keeping the event of every record, and
// its message, in order.
type eventRecorder struct {
	mu       sync.Mutex
	events   []string
	messages []string
	at       []boottime.Instant // when each was logged
}

func (r *eventRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *eventRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *eventRecorder) WithGroup(string) slog.Handler            { return r }

func (r *eventRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == eventlog.KeyEvent {
			r.events = append(r.events, a.Value.String())
			r.messages = append(r.messages, rec.Message)
			r.at = append(r.at, boottime.Now())
		}
		return true
	})
	return nil
}

// first returns the message and the time of the first record of event,
// ok false if there is none.
func (r *eventRecorder) first(event string) (msg string, at boottime.Instant, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.events, event); i >= 0 {
		return r.messages[i], r.at[i], true
	}
	return "", 0, false
}

// waitFor returns once event is logged, or fails the test after 10s.
func (r *eventRecorder) waitFor(t *testing.T, event string) boottime.Instant {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, at, ok := r.first(event); ok {
			return at
		}
	}
	t.Errorf("no %s record within 10s", event)
	return 0
}

func (r *eventRecorder) sequence() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// fakeRun is one Run of script (/bin/sh -c) on a fake hold, timed on the
// boot-time clock from the hold's grant.
type fakeRun struct {
	hold    *fakeHold
	log     *eventRecorder
	res     runner.Result
	granted boottime.Instant
	took    time.Duration // from the grant to Run's return
}

// runScript runs script under cfg (Hold, Child, Log, Name, TTL and NotHeld
// are filled in) on a fake hold of ttl, calling before(hold, log) first.
func runScript(t *testing.T, ttl time.Duration, cfg runner.Config, script string, before func(*fakeHold, *eventRecorder)) fakeRun {
	t.Helper()
	child, err := supervise.Prepare(supervise.Spec{Path: "/bin/sh", Args: []string{"-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	r := fakeRun{hold: newFakeHold(ttl), log: &eventRecorder{}}
	r.granted = r.hold.lastAck // the fake is granted when made
	cfg.Hold, cfg.Child, cfg.Log = r.hold, child, slog.New(r.log)
	cfg.Name, cfg.TTL, cfg.Revision, cfg.NotHeld = "fake", ttl, 7, errFakeNotHeld
	if before != nil {
		before(r.hold, r.log)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.res, err = runner.Run(context.Background(), cfg)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s")
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.took = boottime.Now().Sub(r.granted)
	if n := r.hold.releases(); n != 1 {
		t.Errorf("the hold was released %d times, want once", n)
	}
	return r
}
