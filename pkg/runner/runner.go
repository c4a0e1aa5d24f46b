// Package runner runs a command for exactly the lifetime of a claim hold:
// the claim is kept alive while the child runs, and when the claim can no
// longer be proven held, the child's whole process group is dead before etcd
// could hand the claim to anyone else.
//
// # The deadline
//
// Every renewal's send time is recorded (see claim.Hold.Expiry): etcd
// received it later, so it cannot expire the lease before
//
//	expiry = send time of the last acknowledged renewal + TTL
//
// on any clock running at etcd's rate. The runner SIGKILLs the child's group
// at deadline = expiry - margin and SIGTERMs it grace earlier, measured on
// the boot-time clock, which keeps counting through a suspend. Renewals are
// sent every TTL/10, overlapping while one goes unanswered (see the claim
// package's keeper), so with the defaults (TTL 60s, margin 5s, grace 5s) the
// child is asked to stop 50s after the last acknowledged renewal was sent,
// that is after 44-50s without an answer from etcd. A lost key (--force,
// revoked lease) stops the child at once.
//
// # Decisions and I/O apart
//
// Every decision (when to SIGTERM and SIGKILL, when the claim counts as
// lost, when to warn, when to release) is the plan's (plan.go), a function
// of what happened, the boot-time clock's now and the hold's expiry, with
// no process, clock or etcd in it, and tested as a table. Run waits for
// what can happen and carries the plan's steps out. The hold comes in as
// the Hold interface, so this package does not link etcd.
//
// # A command on the terminal
//
// When the command was given the terminal (supervise.Spec.Terminal, and
// this process was in the terminal's foreground group when it started),
// the terminal signals the command's group directly, and the runner relays
// job control (see suspend): a Ctrl-Z that stops the command stops its
// whole group and then this process, so the user's shell sees the job
// stopped; on fg or bg the hold is proven afresh before anything in the
// group runs again, and the command is killed instead if it cannot be. The
// terminal goes back to this process's group when the command ends, however
// it ends.
//
// What no lease-based tool can promise: if the runner itself is frozen (a
// SIGSTOP, a VM pause) for longer than the margin, the child may act after
// the lease ended. Fencing tokens cover that; see README "Safety".
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/claimctl/claimctl/pkg/boottime"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// Hold is what Run needs of a claim hold: *claim.Hold in claimctl, whose
// methods these are (see there for the exact promises), and a fake in
// tests. The runner itself knows nothing of etcd.
type Hold interface {
	// Expiry is the earliest instant at which the claim may expire: the
	// send time of the last acknowledged renewal plus the TTL.
	Expiry() boottime.Instant
	// Keep starts renewing the claim and watching it until ctx ends or
	// the hold is released.
	Keep(ctx context.Context)
	// RecordAcquired records the acquisition on the claim, off the
	// critical path; a failure marks the hold lost.
	RecordAcquired(ctx context.Context) error
	// Renewed receives a value after each acknowledged renewal.
	Renewed() <-chan struct{}
	// Lost is closed once the hold is known to be gone; nil until Keep.
	Lost() <-chan struct{}
	// LostReason says why Lost closed; it wraps Config.NotHeld.
	LostReason() error
	// Verify proves the hold afresh (after a suspend); an error wrapping
	// Config.NotHeld means the hold is gone, any other proves nothing.
	Verify(ctx context.Context) error
	// Release ends the hold; an error wrapping Config.NotHeld means it had
	// already ended.
	Release() error
}

// Config says what to run and how carefully.
type Config struct {
	// Hold is a verified hold; Run keeps it alive and releases it.
	Hold Hold
	// Name, TTL and Revision describe the hold: the claim's name (for
	// messages), the lease's granted TTL and the fencing token.
	Name     string
	TTL      time.Duration
	Revision int64
	// NotHeld is the error the Hold's errors wrap when the claim is not
	// held (cfg.NotHeld). The losses Run finds itself (no renewal in
	// time, a hold that cannot be proven after a suspend) wrap it too, so
	// that a caller classifies every lost claim with one errors.Is. nil
	// means an error of the runner's own.
	NotHeld error
	// Child is the command to run, prepared before the hold was acquired.
	Child *supervise.Prepared
	// Env is the child's whole environment (nil: the prepared Spec's). It
	// is given here because it carries the hold's token.
	Env []string
	// Margin is how long before the earliest possible lease expiry the
	// child's group must be dead.
	Margin time.Duration
	// Grace is how long the child gets between SIGTERM and SIGKILL; it is
	// capped by EffectiveGrace, so that renewals have the time they need.
	Grace time.Duration
	// MaxRuntime, if positive, stops a child that runs longer (exit 124).
	MaxRuntime time.Duration
	// MinHold, if positive, keeps the claim at least this long after the
	// child started, even if the child finishes sooner.
	MinHold time.Duration
	// Terminal is the terminal given to the child (the prepared Spec's
	// Terminal); used only if the child got it (Child.Foreground), to take
	// it back on Ctrl-Z and at the end.
	Terminal *os.File
	// Signals are forwarded to the child's process group.
	Signals <-chan os.Signal
	// Log receives the run's events (pkg/eventlog): the command started
	// and exited, renewals failing and recovering, the claim lost, the
	// command stopped, the claim released. nil is silent.
	Log *slog.Logger
	// HeldSince is when the hold was verified, for held_ms; zero means
	// when Run starts.
	HeldSince time.Time
}

// Result is how a run ended.
type Result struct {
	// Started is false when the command was never started (the hold could
	// no longer be proven when it was about to start).
	Started bool
	// Status is how the child ended.
	Status supervise.Status
	// Lost is why the claim was lost while the child ran, or nil.
	Lost error
	// TimedOut is true when MaxRuntime stopped the child.
	TimedOut bool
	// ReleaseErr is a failure to release the claim at the end (the lease
	// then expires by itself within its TTL).
	ReleaseErr error
}

// errNotHeld is Config.NotHeld when none is given.
var errNotHeld = errors.New("claim not held")

// EffectiveGrace returns the grace Run uses for a TTL and margin: at most
// the requested grace, and short enough that the SIGTERM, which comes
// TTL - margin - grace after the send time of the last acknowledged
// renewal, comes no earlier than 2TTL/3 after it. Renewals are due TTL/10
// after that send time and, while none is acknowledged, go out again every
// TTL/10 at most (every second once the TTL is over 10s; see the claim
// package's keeper), so by the SIGTERM at least six renewals have gone
// unanswered, and the first of them had more than half the TTL
// (2TTL/3 - TTL/10) to be answered. A margin that leaves no such room
// gives no grace: only the SIGKILL, at the deadline.
func EffectiveGrace(ttl, margin, grace time.Duration) time.Duration {
	room := ttl - margin - 2*ttl/3
	if room < 0 {
		room = 0
	}
	return min(grace, room)
}

// DefaultMargin is the margin used when none is given: a tenth of the TTL,
// at least 500ms and at most 5s.
func DefaultMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/10, 500*time.Millisecond), 5*time.Second)
}

// maxMargin is the largest margin ValidateMargin accepts: half the TTL,
// which is claim.MinLifeAfterWait (the claim package's invariant "life
// after wait"; TestMarginCapIsTheLifeAfterWait keeps the two equal). A hold
// that waited is proven alive for more than that, so its deadline is still
// ahead when its command starts.
func maxMargin(ttl time.Duration) time.Duration { return ttl / 2 }

// ValidateMargin reports why margin cannot be used with ttl: it must be
// positive and at most maxMargin.
func ValidateMargin(ttl, margin time.Duration) error {
	if most := maxMargin(ttl); margin <= 0 || margin > most {
		return fmt.Errorf("invalid --margin %v: it must be positive and at most half the TTL (%v)", margin, most)
	}
	return nil
}

// recordAfter is how long the command runs before the run records its
// acquisition (Hold.RecordAcquired, one Raft entry). The record tells
// status and history since when a hold that waited has held the claim, and
// tells the waiter queued behind that its turn comes with this hold's
// release, which then spares it a read of the queue. A command that ends
// sooner leaves no record: status showed its hold with its wait counted in
// for that second, history bounds its start by revisions, and the waiter
// behind proves its turn with one read of its own key and the newest key
// older than it, one round trip like the read it makes otherwise. A busy claim of short
// commands (a deploy queue, a test farm) saves a write per handoff: one of
// the four a hold costs the cluster.
const recordAfter = time.Second

// Run starts the child, keeps the hold, enforces the deadline, forwards
// signals, and releases the claim only once the child's whole group is gone.
// It returns an error only when the child could not be started (a
// *supervise.StartError for 126/127); the claim is then released at once.
//
// Run decides nothing itself: like consul's lock loop it waits in one
// select for what can happen, and then does what the plan (plan.next) says.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HeldSince.IsZero() {
		cfg.HeldSince = time.Now()
	}
	if cfg.NotHeld == nil {
		cfg.NotHeld = errNotHeld
	}
	h := cfg.Hold
	p := newPlan(cfg.TTL, cfg.Margin, EffectiveGrace(cfg.TTL, cfg.Margin, cfg.Grace), cfg.MinHold)
	if !p.canStart(boottime.Now(), h.Expiry()) {
		// Waiting took so long that the hold can no longer be proven.
		cfg.Child.Close()
		_ = h.Release()
		return Result{Lost: fmt.Errorf("%w: the lease could not be renewed in time before the command started", cfg.NotHeld)}, nil
	}
	child, err := cfg.Child.Start(cfg.Env)
	if err != nil {
		if rerr := h.Release(); rerr != nil {
			err = fmt.Errorf("%w (and releasing the claim failed: %v)", err, rerr)
		}
		return Result{}, err
	}
	defer child.Close()
	s := &session{cfg: cfg, ctx: ctx, child: child, plan: p, exited: child.Exited(),
		ev: events{log: cfg.Log, heldSince: cfg.HeldSince, name: cfg.Name, revision: cfg.Revision}}
	s.ev.started(child.Pid())
	if child.Foreground() {
		// From now on this process is in the background of its terminal.
		// A background write to a terminal with TOSTOP set raises
		// SIGTTOU, which would stop this process while the command runs
		// on; ignored, the write goes through. Ignoring it only after the
		// start keeps the command from inheriting the ignored signal.
		signal.Ignore(sigTTOU)
		defer signal.Reset(sigTTOU)
		s.stopped = child.Stopped()
	}
	p.startedAt(boottime.Now())
	kctx, stopKeeping := context.WithCancel(ctx)
	defer stopKeeping()
	h.Keep(kctx)
	s.lost = h.Lost()
	// Off the handoff's critical path: the command is already running. And
	// only once it has run for recordAfter (see there).
	rctx, stopRecording := context.WithCancel(kctx)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		t := time.NewTimer(recordAfter)
		defer t.Stop()
		select {
		case <-rctx.Done():
			return
		case <-t.C:
		}
		_ = h.RecordAcquired(rctx) // a failure marks the hold lost
	}()
	defer func() {
		stopRecording()
		<-recorded
	}()
	if cfg.MaxRuntime > 0 {
		t := time.NewTimer(cfg.MaxRuntime)
		defer t.Stop()
		s.maxRuntime = t.C
	}

	s.supervise()
	// The group is empty and the plan done: the claim may go now. The
	// guardian has stood down; reaping it (child.Close) can wait until
	// after the release.
	err = h.Release()
	if err != nil && s.res.Lost == nil && !errors.Is(err, cfg.NotHeld) {
		s.res.ReleaseErr = err
	}
	if err == nil && p.releaseIsOurs() {
		s.ev.released()
	}
	return s.res, nil
}

// session is one run of a started command: its plan, the channels Run
// waits on, and the result so far.
type session struct {
	cfg   Config
	ctx   context.Context
	child *supervise.Child
	plan  *plan
	ev    events
	res   Result

	exited     <-chan struct{}  // the command exited; nil once seen
	lost       <-chan struct{}  // Hold.Lost; nil once seen
	stopped    <-chan struct{}  // the command stopped from its terminal; nil if it has none
	maxRuntime <-chan time.Time // --max-runtime; nil without it, or once seen
	unproven   error            // why the hold could not be proven after a suspend
}

// supervise runs the plan until it says release.
func (s *session) supervise() {
	s.res.Started = true
	for in := inTick; ; {
		now, expiry := boottime.Now(), s.cfg.Hold.Expiry()
		st := s.plan.next(in, now, expiry)
		in = inTick
		switch st.do {
		case doRelease:
			s.res.TimedOut = s.plan.timedOut
			return
		case doWarnRenewals:
			s.ev.renewFailed(now.Sub(expiry.Add(-s.cfg.TTL)), expiry.Add(-s.cfg.Margin).Sub(now))
		case doNoteRenewed:
			s.ev.renewed()
		case doTerm, doKill:
			s.stop(st, now, expiry)
		case doResume:
			// Already stopping: let it end, never wait for fg.
			_ = s.child.Signal(sigCONT)
		case doSuspend:
			if s.unproven = s.suspend(); s.unproven != nil {
				in = inUnproven
				continue
			}
		}
		if !now.Before(st.at) {
			continue
		}
		if st.do == doHold {
			in = s.awaitHold(st.at)
		} else {
			in = s.await(st.at)
		}
	}
}

// await waits for whatever happens first while the command's group runs,
// until at at the latest, and says what it was.
func (s *session) await(at boottime.Instant) input {
	t := time.NewTimer(boottime.Until(at))
	defer t.Stop()
	select {
	case <-s.child.GroupDone():
		s.res.Status = s.child.Status()
		s.ev.exited(s.res.Status)
		if s.child.Foreground() {
			takeTerminalBack(s.cfg.Terminal, s.child.Pid(), s.ev.notice)
		}
		return inGroupGone
	case <-s.exited:
		s.exited = nil
		return inExited
	case sig := <-s.cfg.Signals:
		if sig, ok := sig.(syscall.Signal); ok {
			_ = s.child.Signal(sig)
		}
		return inTick
	case <-s.lost:
		s.lost = nil
		return inLost
	case <-s.cfg.Hold.Renewed():
		return inRenewed
	case <-s.stopped:
		return inTerminalStop
	case <-s.maxRuntime:
		s.maxRuntime = nil
		return inTimedOut
	case <-t.C:
		return inTick
	}
}

// awaitHold waits, with nothing of the command left, until at, or until
// the hold is lost, the context ends or a signal arrives, which end
// --min-hold early.
func (s *session) awaitHold(at boottime.Instant) input {
	t := time.NewTimer(boottime.Until(at))
	defer t.Stop()
	select {
	case <-s.ctx.Done():
	case <-s.cfg.Hold.Lost():
	case <-s.cfg.Signals:
	case <-t.C:
		return inTick
	}
	return inHoldEnded
}

// stop carries out a term or a kill: the run's loss, if this step finds
// it, the announcement, and the signals.
func (s *session) stop(st step, now, expiry boottime.Instant) {
	cfg := s.cfg
	if st.lost {
		switch st.why {
		case causeDeadline:
			s.res.Lost = fmt.Errorf("%w: no renewal was acknowledged in time (deadline %v after the last acknowledged renewal was sent)", cfg.NotHeld, cfg.TTL-cfg.Margin)
		case causeSilent:
			s.res.Lost = fmt.Errorf("%w: etcd has not acknowledged a renewal for %v, so the lease may expire in %v", cfg.NotHeld,
				now.Sub(expiry.Add(-cfg.TTL)).Round(time.Millisecond), expiry.Sub(now).Round(time.Millisecond))
		case causeReported:
			s.res.Lost = cfg.Hold.LostReason()
		case causeNotProven:
			s.res.Lost = s.unproven
		}
	}
	if st.announce {
		s.announce(st, now)
	}
	if st.do == doKill {
		s.child.Kill()
		return
	}
	s.child.StopAt(time.Now().Add(boottime.Until(st.killAt)))
}

// announce logs why the command is being stopped, and how.
func (s *session) announce(st step, now boottime.Instant) {
	at := time.Now().Format(time.TimeOnly)
	event, why := eventlog.Lost, fmt.Sprintf("claim %s lost at %s: %v", s.cfg.Name, at, s.res.Lost)
	switch st.why {
	case causeNotProven:
		why = fmt.Sprintf("claim %s lost while suspended: %v", s.cfg.Name, s.res.Lost)
	case causeMaxRuntime:
		event, why = eventlog.TimedOut, fmt.Sprintf("the command ran longer than --max-runtime %v", s.cfg.MaxRuntime)
	case causeLeftBehind:
		event, why = eventlog.Notice, "the command exited but left processes behind (in its group, or jobs of a shell in their own groups)"
	}
	switch {
	case st.do == doTerm:
		why += fmt.Sprintf("; stopping the command (SIGTERM now, SIGKILL in %v)", max(st.killAt.Sub(now), 0).Round(time.Millisecond))
	case st.why == causeNotProven:
		why += "; killing the command, which never ran again"
	default:
		why += "; killing the command"
	}
	s.ev.stopping(event, why)
}

// suspend relays a stop of the command (Ctrl-Z on the terminal, which
// signalled the command's group, not us) to the user's shell, and returns
// once this process is continued, with the group continued too or, if the
// hold can no longer be proven, with the reason (the group is then still
// stopped, and the caller kills it).
//
// The order matters. First the whole job is SIGSTOPped (the group, and the
// jobs of a shell run as the command: supervise.Child.SignalJob): members
// that ignore SIGTSTP (or did not get it) must not run on while nothing
// supervises them. Then the terminal comes back to our group, if the
// command's group still has it (after bg the shell may have it). Then this
// process stops its own group (supervise.SuspendSelf), which the shell
// reports as a stopped job. Nothing renews the lease meanwhile, and nothing
// in the command's group can act, so no one else can be handed the claim
// while anything of ours runs.
//
// On continue, the group runs again only once the hold is proven afresh
// before the deadline: a renewal acknowledged and the key read back
// (claim.Hold.Verify). The terminal goes back to the command's group only
// if ours has it, that is after fg rather than bg; after bg a command that
// reads the terminal is stopped by SIGTTIN and suspended again.
func (s *session) suspend() error {
	cfg, child, logf := s.cfg, s.child, s.ev.notice
	h, tty := cfg.Hold, cfg.Terminal
	deadline := func() boottime.Instant { return h.Expiry().Add(-cfg.Margin) }
	_ = child.SignalJob(sigSTOP)
	own := ownGroup()
	if fg, err := supervise.ForegroundGroup(tty); err == nil && fg == child.Pid() {
		if err := supervise.SetForeground(tty, own); err != nil {
			logf("%v", err)
		}
	}
	left := max(boottime.Until(deadline()), 0).Round(100 * time.Millisecond)
	logf("suspended: claim %s is not renewed while suspended; it expires after its TTL (%v), so continue within %v or the command is killed when continued", cfg.Name, cfg.TTL, left)
	supervise.SuspendSelf()

	for {
		d := deadline()
		if !boottime.Now().Before(d) {
			return fmt.Errorf("%w: the claim ran out while run was suspended (no renewal for %v)", cfg.NotHeld, boottime.Now().Sub(h.Expiry().Add(-cfg.TTL)).Round(time.Millisecond))
		}
		ctx, cancel := context.WithTimeout(context.Background(), boottime.Until(d))
		err := h.Verify(ctx)
		cancel()
		if errors.Is(err, cfg.NotHeld) {
			return fmt.Errorf("%w (found on continuing after a suspend)", err)
		}
		if err == nil && boottime.Now().Before(deadline()) {
			break
		}
		time.Sleep(min(100*time.Millisecond, max(boottime.Until(d), 0)))
	}
	if fg, err := supervise.ForegroundGroup(tty); err == nil && fg == own {
		if err := supervise.SetForeground(tty, child.Pid()); err != nil {
			logf("%v", err)
		}
	}
	_ = child.SignalJob(sigCONT)
	return nil
}

// takeTerminalBack makes our group the terminal's foreground group again
// once the command has ended, if the command's group still has it (or a
// group that no longer exists, such as a job of an interactive shell run as
// the command that was killed with it). A terminal that another group has
// (the user's shell, after bg) is left alone.
func takeTerminalBack(tty *os.File, pgid int, logf func(string, ...any)) {
	fg, err := supervise.ForegroundGroup(tty)
	own := ownGroup()
	if err != nil || fg == own {
		return
	}
	if fg == pgid || groupGone(fg) {
		if err := supervise.SetForeground(tty, own); err != nil {
			logf("%v", err)
		}
	}
}
