package runner

import (
	"time"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// poll is the longest Run waits between looks at the clock: a suspend of
// the machine stops Go's timers but not the boot-time clock, so a deadline
// that passed during one is noticed this soon after the resume.
const poll = 250 * time.Millisecond

// leftoverWait is how long the group may take to empty after the command
// exits before what is left in it is stopped.
const leftoverWait = 20 * time.Millisecond

// renewWarnAfter is how long without an acknowledged renewal (since the
// send time of the last acknowledged one) the runner warns, as a fraction
// of the TTL: renewals go every TTL/10, so this is two missed in a row,
// well before the command is stopped (see EffectiveGrace).
const renewWarnAfter = 5 // TTL/5

// input is what Run saw since it last asked the plan.
type input int

const (
	// inTick: only time passed (a timer fired, or a signal was forwarded).
	inTick input = iota
	// inExited: the command (its group's leader) exited.
	inExited
	// inGroupGone: nothing of the command's group is left.
	inGroupGone
	// inLost: the hold reported itself lost (Hold.Lost).
	inLost
	// inRenewed: a renewal was acknowledged (Hold.Renewed).
	inRenewed
	// inTimedOut: --max-runtime elapsed.
	inTimedOut
	// inTerminalStop: the command was stopped from its terminal (Ctrl-Z).
	inTerminalStop
	// inUnproven: continued after a suspend, the hold could not be proven.
	inUnproven
	// inHoldEnded: the --min-hold wait was cut short (the hold lost, a
	// signal, the context ended).
	inHoldEnded
)

// action is what Run must do now.
type action int

const (
	// doWait: nothing; ask again at step.at or on the next input.
	doWait action = iota
	// doWarnRenewals: log that renewals go unacknowledged (renew_failed).
	doWarnRenewals
	// doNoteRenewed: log that they are acknowledged again (renewed).
	doNoteRenewed
	// doTerm: SIGTERM the group now, SIGKILL it at step.killAt.
	doTerm
	// doKill: SIGKILL the group now.
	doKill
	// doResume: SIGCONT the group, which was stopped while being stopped.
	doResume
	// doSuspend: relay the Ctrl-Z and prove the hold on continuing; an
	// unproven hold is the input unproven.
	doSuspend
	// doHold: keep the claim, with nothing running, until step.at.
	doHold
	// doRelease: release the claim; the run is over.
	doRelease
)

// cause is why the command is stopped.
type cause int

const (
	noCause cause = iota
	// causeDeadline: no renewal acknowledged before the deadline.
	causeDeadline
	// causeSilent: none acknowledged by deadline - grace.
	causeSilent
	// causeReported: the hold reported itself lost.
	causeReported
	// causeNotProven: the hold could not be proven after a suspend.
	causeNotProven
	// causeMaxRuntime: --max-runtime elapsed.
	causeMaxRuntime
	// causeLeftBehind: the command exited and left processes in its group.
	causeLeftBehind
)

// step is the plan's answer: one action, and when to ask again.
type step struct {
	do action
	// why is what stops the command, for term and kill.
	why cause
	// lost is set on the step that finds the claim lost: why is then the
	// cause the run reports.
	lost bool
	// announce is set on the first stop of the command: log why.
	announce bool
	// killAt is when the SIGKILL follows a term.
	killAt boottime.Instant
	// at is when to ask again at the latest, with inTick; at or before
	// now means at once.
	at boottime.Instant
}

// plan is every decision Run makes, as a function of what happened (an
// input), the boot-time clock's now and the hold's expiry; Run only waits
// for inputs and carries the steps out. With deadline = expiry - margin:
//
//   - now at or past the deadline: the claim is lost, SIGKILL the group;
//   - now at or past deadline - grace with the claim not yet lost: it is
//     lost, SIGTERM the group, SIGKILL at the deadline;
//   - the hold reports itself lost: SIGTERM now, SIGKILL after the grace or
//     at the deadline, whichever comes first;
//   - --max-runtime elapsed: the same, and the run timed out;
//   - the command exited and its group is not empty leftoverWait later:
//     the same for what it left behind;
//   - no renewal acknowledged for TTL/renewWarnAfter: warn, once until one
//     is;
//   - Ctrl-Z on the command's terminal: suspend with it, unless the
//     command is already being stopped (then let it run to its end);
//   - the group gone: hold the claim until --min-hold is over, unless it
//     was lost, then release it.
//
// Only the first stop is announced, and the deadline if the claim was not
// lost before it; each later cause SIGTERMs the group again, and the
// SIGKILL only ever comes earlier (supervise.Child.StopAt).
//
// Its zero value is not usable: see newPlan.
type plan struct {
	ttl, margin, grace time.Duration
	minHold            time.Duration
	// minHoldUntil is when --min-hold is over, set by startedAt.
	minHoldUntil boottime.Instant

	lost        cause // why the claim was found lost, or noCause
	stopping    bool  // a term or kill was sent
	timedOut    bool
	exited      bool // the command exited at exitedAt
	exitedAt    boottime.Instant
	leftStopped bool // what it left behind was stopped
	gone        bool // the group is gone
	holdCut     bool // the --min-hold wait was cut short
	renewWarned bool // renew_failed was logged, and no renewal since
}

// newPlan plans a run with the effective grace (see EffectiveGrace).
func newPlan(ttl, margin, grace, minHold time.Duration) *plan {
	return &plan{ttl: ttl, margin: margin, grace: grace, minHold: minHold}
}

// startedAt notes when the command started, which --min-hold counts from.
func (p *plan) startedAt(at boottime.Instant) { p.minHoldUntil = at.Add(p.minHold) }

// canStart reports whether the command may start: the hold is still proven
// before its deadline. Waiting may have taken so long that it is not.
func (p *plan) canStart(now, expiry boottime.Instant) bool {
	return now.Before(expiry.Add(-p.margin))
}

// suspendable reports whether a Ctrl-Z is relayed: not while the command is
// being stopped, which must never wait for an fg.
func (p *plan) suspendable() bool { return p.lost == noCause && !p.stopping }

// next takes in what happened and returns what to do, given now and the
// hold's expiry. It is the only place where Run decides anything.
func (p *plan) next(in input, now, expiry boottime.Instant) step {
	deadline := expiry.Add(-p.margin)
	switch in {
	case inGroupGone:
		p.gone = true
	case inHoldEnded:
		p.holdCut = true
	}
	if p.gone {
		return p.afterGroup(now)
	}
	switch in {
	case inExited:
		p.exited, p.exitedAt = true, now
	case inLost:
		if p.lost == noCause {
			p.lost = causeReported
			return p.stop(causeReported, true, now, deadline)
		}
	case inRenewed:
		if p.renewWarned {
			p.renewWarned = false
			return step{do: doNoteRenewed, at: now}
		}
	case inTimedOut:
		p.timedOut = true
		return p.stop(causeMaxRuntime, false, now, deadline)
	case inTerminalStop:
		if !p.suspendable() {
			return step{do: doResume, at: now}
		}
		return step{do: doSuspend, at: now}
	case inUnproven:
		p.lost, p.stopping = causeNotProven, true
		return step{do: doKill, why: causeNotProven, lost: true, announce: true, at: now}
	}
	return p.onTime(now, expiry, deadline)
}

// onTime is what the clock alone decides.
func (p *plan) onTime(now, expiry, deadline boottime.Instant) step {
	if p.exited && !p.leftStopped && !now.Before(p.exitedAt.Add(leftoverWait)) {
		p.leftStopped = true
		return p.stop(causeLeftBehind, false, now, deadline)
	}
	switch {
	case !now.Before(deadline):
		// Nothing may run any more; kill again on every look until the
		// group is gone.
		s := step{do: doKill, why: causeDeadline, at: now.Add(poll)}
		if p.lost == noCause {
			p.lost = causeDeadline
			s.lost, s.announce = true, true
		}
		p.stopping = true
		return s
	case !now.Before(deadline.Add(-p.grace)) && p.lost == noCause:
		p.lost = causeSilent
		return p.stop(causeSilent, true, now, deadline)
	case p.lost == noCause && !p.renewWarned && now.Sub(expiry.Add(-p.ttl)) >= p.ttl/renewWarnAfter:
		p.renewWarned = true
		return step{do: doWarnRenewals, at: now}
	}
	return step{do: doWait, at: p.wake(now, deadline)}
}

// stop SIGTERMs the group with a SIGKILL after the grace, or at the
// deadline if that comes first.
func (p *plan) stop(why cause, lost bool, now, deadline boottime.Instant) step {
	s := step{do: doTerm, why: why, lost: lost, announce: !p.stopping, killAt: min(now.Add(p.grace), deadline), at: now}
	p.stopping = true
	return s
}

// wake is when the clock next decides something: the SIGTERM's time, or
// once stopping the deadline, or the check for what an exited command left
// behind; at least every poll, and never in the past.
func (p *plan) wake(now, deadline boottime.Instant) boottime.Instant {
	next := deadline.Add(-p.grace)
	if p.stopping || !now.Before(next) {
		next = deadline
	}
	if p.exited && !p.leftStopped {
		next = min(next, p.exitedAt.Add(leftoverWait))
	}
	return min(max(next, now.Add(time.Millisecond)), now.Add(poll))
}

// afterGroup decides once the group is gone: hold until --min-hold is over
// (not for a lost claim, and not once the wait was cut short), then
// release.
func (p *plan) afterGroup(now boottime.Instant) step {
	if p.minHold > 0 && p.lost == noCause && !p.holdCut && now.Before(p.minHoldUntil) {
		return step{do: doHold, at: min(p.minHoldUntil, now.Add(poll))}
	}
	return step{do: doRelease, at: now}
}

// releaseIsOurs reports whether a successful release at the end gives the
// claim back (the released record). Not once the hold reported itself lost:
// its key was deleted or replaced (release --force revokes the lease just
// after deleting the key), so whichever of the two revokes comes first,
// the claim had already been taken away.
func (p *plan) releaseIsOurs() bool { return p.lost != causeReported }
