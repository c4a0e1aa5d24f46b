package runner

import (
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// ms is the boot-time instant n milliseconds after boot.
func ms(n int) boottime.Instant { return boottime.Instant(time.Duration(n) * time.Millisecond) }

// TestPlan drives the plan through the runs it must decide, one input at a
// time, with no process and no etcd. Every case has TTL 10s, margin 1s and
// grace 2s; the command started at 100s, and unless a call says otherwise
// the last acknowledged renewal was sent at 100s, so expiry is 110s, the
// deadline 109s and the SIGTERM's time 107s.
func TestPlan(t *testing.T) {
	type call struct {
		in     input
		now    int // ms
		expiry int // ms; 0 means 110000
		want   step
	}
	wait := func(at int) step { return step{do: doWait, at: ms(at)} }
	cases := []struct {
		name    string
		minHold time.Duration
		grace   time.Duration // 0 means 2s; -1 means none
		calls   []call
		// the plan's verdict once the calls are done
		lost     cause
		timedOut bool
	}{
		{
			name: "quiet: wake at least every poll",
			calls: []call{
				{inTick, 101000, 0, wait(101250)},
				{inTick, 101500, 0, wait(101750)},
				{inRenewed, 101600, 111000, wait(101850)},
			},
		},
		{
			name: "renewals silent for TTL/5: warn once, note when they come back",
			calls: []call{
				{inTick, 101999, 0, wait(102249)},
				{inTick, 102000, 0, step{do: doWarnRenewals, at: ms(102000)}},
				{inTick, 102000, 0, wait(102250)},
				{inTick, 104000, 0, wait(104250)},
				{inRenewed, 104100, 114000, step{do: doNoteRenewed, at: ms(104100)}},
				{inTick, 104100, 114000, wait(104350)},
				{inRenewed, 104200, 114100, wait(104450)},
				// Silent again for TTL/5 after the new last renewal: a new
				// warning.
				{inTick, 106000, 114000, step{do: doWarnRenewals, at: ms(106000)}},
			},
		},
		{
			name: "term at the floor, kill at the deadline",
			calls: []call{
				{inTick, 102000, 0, step{do: doWarnRenewals, at: ms(102000)}},
				{inTick, 106990, 0, wait(107000)},
				{inTick, 107000, 0, step{do: doTerm, why: causeSilent, lost: true, announce: true, killAt: ms(109000), at: ms(107000)}},
				// Stopping: the next threshold is the deadline.
				{inTick, 107000, 0, wait(107250)},
				{inTick, 108900, 0, wait(109000)},
				{inTick, 109000, 0, step{do: doKill, why: causeDeadline, at: ms(109250)}},
				// Killed again on every look until the group is gone.
				{inTick, 109250, 0, step{do: doKill, why: causeDeadline, at: ms(109500)}},
				{inGroupGone, 109300, 0, step{do: doRelease, at: ms(109300)}},
			},
			lost: causeSilent,
		},
		{
			name: "a renewal acknowledged just before the floor moves it",
			calls: []call{
				{inRenewed, 106900, 116500, wait(107150)},
				{inTick, 107000, 116500, wait(107250)},
				{inTick, 113500, 116500, step{do: doTerm, why: causeSilent, lost: true, announce: true, killAt: ms(115500), at: ms(113500)}},
			},
			lost: causeSilent,
		},
		{
			name: "woken past the deadline (a suspend of the machine): kill, and say the claim is lost",
			calls: []call{
				{inTick, 101000, 0, wait(101250)},
				{inTick, 120000, 0, step{do: doKill, why: causeDeadline, lost: true, announce: true, at: ms(120250)}},
			},
			lost: causeDeadline,
		},
		{
			name: "the hold reports itself lost: term at once, kill after the grace",
			calls: []call{
				{inLost, 103000, 0, step{do: doTerm, why: causeReported, lost: true, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inTick, 103000, 0, wait(103250)},
				// Lost already: neither the warning nor the floor decide
				// anything any more.
				{inTick, 107000, 0, wait(107250)},
			},
			lost: causeReported,
		},
		{
			name: "lost close to the deadline: the kill comes at the deadline, not after the grace",
			calls: []call{
				{inLost, 108000, 0, step{do: doTerm, why: causeReported, lost: true, announce: true, killAt: ms(109000), at: ms(108000)}},
			},
			lost: causeReported,
		},
		{
			name: "max-runtime, then the loss: stopped once, and the run lost",
			calls: []call{
				{inTimedOut, 103000, 0, step{do: doTerm, why: causeMaxRuntime, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inLost, 104000, 0, step{do: doTerm, why: causeReported, lost: true, killAt: ms(106000), at: ms(104000)}},
				{inGroupGone, 104500, 0, step{do: doRelease, at: ms(104500)}},
			},
			lost: causeReported, timedOut: true,
		},
		{
			name: "the loss, then max-runtime: timed out too, not announced",
			calls: []call{
				{inLost, 103000, 0, step{do: doTerm, why: causeReported, lost: true, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inTimedOut, 104000, 0, step{do: doTerm, why: causeMaxRuntime, killAt: ms(106000), at: ms(104000)}},
			},
			lost: causeReported, timedOut: true,
		},
		{
			name: "max-runtime, then the floor and the deadline",
			calls: []call{
				{inTimedOut, 103000, 0, step{do: doTerm, why: causeMaxRuntime, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inTick, 107000, 0, step{do: doTerm, why: causeSilent, lost: true, killAt: ms(109000), at: ms(107000)}},
				{inTick, 109000, 0, step{do: doKill, why: causeDeadline, at: ms(109250)}},
			},
			lost: causeSilent, timedOut: true,
		},
		{
			name: "max-runtime, then past the deadline at once: the deadline is announced",
			calls: []call{
				{inTimedOut, 103000, 0, step{do: doTerm, why: causeMaxRuntime, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inTick, 115000, 0, step{do: doKill, why: causeDeadline, lost: true, announce: true, at: ms(115250)}},
			},
			lost: causeDeadline, timedOut: true,
		},
		{
			name: "the command exits and its group empties: release",
			calls: []call{
				{inExited, 103000, 112500, wait(103020)},
				{inGroupGone, 103005, 112500, step{do: doRelease, at: ms(103005)}},
			},
		},
		{
			name: "the command exits and leaves members behind: they are stopped",
			calls: []call{
				{inExited, 103000, 112500, wait(103020)},
				{inTick, 103019, 112500, wait(103020)},
				{inTick, 103020, 112500, step{do: doTerm, why: causeLeftBehind, announce: true, killAt: ms(105020), at: ms(103020)}},
				{inTick, 103020, 112500, wait(103270)},
				{inGroupGone, 104000, 0, step{do: doRelease, at: ms(104000)}},
			},
		},
		{
			name: "members left behind after a loss: SIGTERMed again, not announced",
			calls: []call{
				{inLost, 103000, 0, step{do: doTerm, why: causeReported, lost: true, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inExited, 103100, 0, wait(103120)},
				{inTick, 103120, 0, step{do: doTerm, why: causeLeftBehind, killAt: ms(105120), at: ms(103120)}},
			},
			lost: causeReported,
		},
		{
			name:    "min-hold: the claim is kept until it is over",
			minHold: 5 * time.Second,
			calls: []call{
				{inExited, 101000, 0, wait(101020)},
				{inGroupGone, 101001, 0, step{do: doHold, at: ms(101251)}},
				{inTick, 104900, 105000, step{do: doHold, at: ms(105000)}},
				{inTick, 105000, 105000, step{do: doRelease, at: ms(105000)}},
			},
		},
		{
			name:    "min-hold with a loss while the command ran: released at once",
			minHold: 5 * time.Second,
			calls: []call{
				{inLost, 101000, 0, step{do: doTerm, why: causeReported, lost: true, announce: true, killAt: ms(103000), at: ms(101000)}},
				{inGroupGone, 101500, 0, step{do: doRelease, at: ms(101500)}},
			},
			lost: causeReported,
		},
		{
			name:    "min-hold cut short (the hold lost, a signal): released at once",
			minHold: 5 * time.Second,
			calls: []call{
				{inGroupGone, 101000, 0, step{do: doHold, at: ms(101250)}},
				{inHoldEnded, 102000, 0, step{do: doRelease, at: ms(102000)}},
			},
		},
		{
			name:    "min-hold already over when the group ends",
			minHold: time.Second,
			calls: []call{
				{inGroupGone, 101000, 0, step{do: doRelease, at: ms(101000)}},
			},
		},
		{
			name: "Ctrl-Z: suspend; the hold proven on continuing: go on",
			calls: []call{
				{inTerminalStop, 101000, 0, step{do: doSuspend, at: ms(101000)}},
				{inTick, 130000, 139500, wait(130250)},
			},
		},
		{
			name: "Ctrl-Z: suspend; the hold not proven on continuing: kill",
			calls: []call{
				{inTerminalStop, 101000, 0, step{do: doSuspend, at: ms(101000)}},
				{inUnproven, 130000, 0, step{do: doKill, why: causeNotProven, lost: true, announce: true, at: ms(130000)}},
				{inTick, 130000, 0, step{do: doKill, why: causeDeadline, at: ms(130250)}},
			},
			lost: causeNotProven,
		},
		{
			name: "Ctrl-Z while being stopped: continue the group, never wait for fg",
			calls: []call{
				{inTimedOut, 103000, 0, step{do: doTerm, why: causeMaxRuntime, announce: true, killAt: ms(105000), at: ms(103000)}},
				{inTerminalStop, 103500, 0, step{do: doResume, at: ms(103500)}},
			},
			timedOut: true,
		},
		{
			name:  "no grace left by the margin: no SIGTERM, the SIGKILL at the deadline",
			grace: -1,
			calls: []call{
				{inTick, 102000, 0, step{do: doWarnRenewals, at: ms(102000)}},
				{inTick, 108900, 0, wait(109000)},
				{inTick, 108999, 0, wait(109000)},
				{inTick, 109000, 0, step{do: doKill, why: causeDeadline, lost: true, announce: true, at: ms(109250)}},
			},
			lost: causeDeadline,
		},
		{
			name: "stopping: the next threshold is the deadline, the floor is only polled",
			calls: []call{
				{inTimedOut, 103000, 0, step{do: doTerm, why: causeMaxRuntime, announce: true, killAt: ms(105000), at: ms(103000)}},
				// The warning still comes while the command is stopped.
				{inTick, 106900, 0, step{do: doWarnRenewals, at: ms(106900)}},
				{inTick, 106900, 0, wait(107150)},
				{inTick, 108900, 0, step{do: doTerm, why: causeSilent, lost: true, killAt: ms(109000), at: ms(108900)}},
				{inTick, 108900, 0, wait(109000)},
			},
			lost:     causeSilent,
			timedOut: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			grace := 2 * time.Second
			switch c.grace {
			case -1:
				grace = 0
			case 0:
			default:
				grace = c.grace
			}
			p := newPlan(10*time.Second, time.Second, grace, c.minHold)
			p.startedAt(ms(100000))
			for i, call := range c.calls {
				expiry := ms(110000)
				if call.expiry != 0 {
					expiry = ms(call.expiry)
				}
				if got := p.next(call.in, ms(call.now), expiry); got != call.want {
					t.Fatalf("call %d (input %d at %dms): got %+v, want %+v", i, call.in, call.now, got, call.want)
				}
			}
			if p.lost != c.lost || p.timedOut != c.timedOut {
				t.Errorf("the run ends lost=%d timedOut=%v, want lost=%d timedOut=%v", p.lost, p.timedOut, c.lost, c.timedOut)
			}
		})
	}
}

// TestPlanCanStart: the command starts only on a hold proven before its
// deadline.
func TestPlanCanStart(t *testing.T) {
	p := newPlan(10*time.Second, time.Second, 2*time.Second, 0)
	for _, c := range []struct {
		now  int
		want bool
	}{{100000, true}, {108999, true}, {109000, false}, {120000, false}} {
		if got := p.canStart(ms(c.now), ms(110000)); got != c.want {
			t.Errorf("canStart at %dms with expiry 110s = %v, want %v", c.now, got, c.want)
		}
	}
}

// TestPlanWakesNoMoreOftenThanEveryMillisecond: a threshold a few
// microseconds away is looked at a millisecond later, not in a busy loop.
func TestPlanWakesNoMoreOftenThanEveryMillisecond(t *testing.T) {
	p := newPlan(10*time.Second, time.Second, 2*time.Second, 0)
	p.renewWarned = true
	now := ms(107000).Add(-5 * time.Microsecond)
	if got, want := p.next(inTick, now, ms(110000)), (step{do: doWait, at: now.Add(time.Millisecond)}); got != want {
		t.Fatalf("5µs before the floor: got %+v, want %+v", got, want)
	}
}

// TestPlanReleaseIsOurs: a release after the hold reported itself lost
// (its key deleted by release --force, which revokes the lease too) is not
// announced as giving the claim back; after a deadline it is.
func TestPlanReleaseIsOurs(t *testing.T) {
	p := newPlan(10*time.Second, time.Second, 2*time.Second, 0)
	if !p.releaseIsOurs() {
		t.Error("a clean run's release is not ours")
	}
	p.next(inTick, ms(120000), ms(110000))
	if !p.releaseIsOurs() {
		t.Error("the release after a deadline is not ours")
	}
	p = newPlan(10*time.Second, time.Second, 2*time.Second, 0)
	p.next(inLost, ms(101000), ms(110000))
	if p.releaseIsOurs() {
		t.Error("the release after the hold reported itself lost is announced as ours")
	}
}
