//go:build linux

package runner_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/runner"
)

// The Run tests below use a fake hold and real children: the plan's
// decisions (plan_test.go) carried out on a process group. With TTL 2s,
// margin 200ms and grace 400ms, a hold whose renewals stop at its grant has
// its SIGTERM 1.4s and its SIGKILL 1.8s after the grant.
const (
	fakeTTL    = 2 * time.Second
	fakeMargin = 200 * time.Millisecond
	fakeGrace  = 400 * time.Millisecond
	fakeTerm   = fakeTTL - fakeMargin - fakeGrace
	fakeKill   = fakeTTL - fakeMargin
)

func fakeConfig() runner.Config {
	return runner.Config{Margin: fakeMargin, Grace: fakeGrace}
}

func wantEvents(t *testing.T, r fakeRun, want ...string) {
	t.Helper()
	if got := r.log.sequence(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestRunTermsAtTheFloor(t *testing.T) {
	if g := runner.EffectiveGrace(fakeTTL, fakeMargin, fakeGrace); g != fakeGrace {
		t.Fatalf("EffectiveGrace = %v; the test assumes %v", g, fakeGrace)
	}
	r := runScript(t, fakeTTL, fakeConfig(), "exec sleep 30", func(h *fakeHold, _ *eventRecorder) { h.silence() })
	if !errors.Is(r.res.Lost, errFakeNotHeld) || !strings.Contains(r.res.Lost.Error(), "etcd has not acknowledged a renewal") {
		t.Fatalf("Lost = %v; want the renewals' silence, wrapping Config.NotHeld", r.res.Lost)
	}
	if r.res.Status.Signal != syscall.SIGTERM {
		t.Errorf("the command ended %s; want it SIGTERMed (it does not ignore TERM)", r.res.Status)
	}
	if r.took < fakeTerm {
		t.Errorf("Run returned %v after the grant, before the SIGTERM's time %v", r.took, fakeTerm)
	}
	wantEvents(t, r, "command_started", "renew_failed", "lost", "command_exited", "released")
	// At the floor the SIGKILL comes at the deadline: the grace later, less
	// the time the wake-up took.
	msg, _, _ := r.log.first("lost")
	m := regexp.MustCompile(`; stopping the command \(SIGTERM now, SIGKILL in (\S+)\)$`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("the lost record %q does not say how the command is stopped", msg)
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d > fakeGrace || d < fakeGrace-100*time.Millisecond {
		t.Errorf("the lost record %q: SIGKILL in %s, want the deadline, %v after the floor", msg, m[1], fakeGrace)
	}
}

func TestRunKillsAtTheDeadline(t *testing.T) {
	r := runScript(t, fakeTTL, fakeConfig(), "trap '' TERM; exec sleep 30", func(h *fakeHold, _ *eventRecorder) { h.silence() })
	if !errors.Is(r.res.Lost, errFakeNotHeld) {
		t.Fatalf("Lost = %v; want it to wrap Config.NotHeld", r.res.Lost)
	}
	if r.res.Status.Signal != syscall.SIGKILL {
		t.Errorf("the command ended %s; want it SIGKILLed (it ignores TERM)", r.res.Status)
	}
	if r.took < fakeKill {
		t.Errorf("Run returned %v after the grant, before the deadline %v", r.took, fakeKill)
	}
	// The loss is announced once, at the SIGTERM; the SIGKILL is not.
	wantEvents(t, r, "command_started", "renew_failed", "lost", "command_exited", "released")
}

func TestRunStopsTheCommandWhenTheHoldIsLost(t *testing.T) {
	r := runScript(t, fakeTTL, fakeConfig(), "exec sleep 30", func(h *fakeHold, _ *eventRecorder) {
		go func() {
			time.Sleep(300 * time.Millisecond)
			h.lose()
		}()
	})
	if r.res.Lost == nil || r.res.Lost.Error() != "fake claim not held: the fake's key was deleted" {
		t.Fatalf("Lost = %v; want the hold's own reason", r.res.Lost)
	}
	if r.res.Status.Signal != syscall.SIGTERM {
		t.Errorf("the command ended %s; want it SIGTERMed", r.res.Status)
	}
	if r.res.ReleaseErr != nil {
		t.Errorf("ReleaseErr = %v; a release of a lost hold is no failure", r.res.ReleaseErr)
	}
	if r.took >= fakeTerm {
		t.Errorf("Run took %v; the loss must stop the command at once, not at the floor (%v)", r.took, fakeTerm)
	}
	wantEvents(t, r, "command_started", "lost", "command_exited")
}

// TestRunMaxRuntimeThenLoss: a loss during the grace --max-runtime gave
// makes the run lost (exit 76 wins over 124) but postpones no SIGKILL.
func TestRunMaxRuntimeThenLoss(t *testing.T) {
	cfg := fakeConfig()
	cfg.MaxRuntime = 50 * time.Millisecond
	r := runScript(t, fakeTTL, cfg, "trap '' TERM; exec sleep 30", func(h *fakeHold, log *eventRecorder) {
		go func() {
			log.waitFor(t, "timed_out")
			time.Sleep(fakeGrace / 2)
			h.lose()
		}()
	})
	if !r.res.TimedOut || !errors.Is(r.res.Lost, errFakeNotHeld) {
		t.Fatalf("Result = %+v; want it timed out and lost", r.res)
	}
	if r.res.Status.Signal != syscall.SIGKILL {
		t.Errorf("the command ended %s; want it SIGKILLed (it ignores TERM)", r.res.Status)
	}
	_, timedOut, _ := r.log.first("timed_out")
	_, exited, _ := r.log.first("command_exited")
	// The loss's own SIGKILL would come 1.5 graces after the timed_out.
	if d := exited.Sub(timedOut); d > fakeGrace*5/4 {
		t.Errorf("the command exited %v after timed_out; the grace is %v, and a later loss must not postpone the SIGKILL", d, fakeGrace)
	}
	// Already stopping: the loss is not announced again.
	wantEvents(t, r, "command_started", "timed_out", "command_exited")
}

func TestRunStopsWhatTheCommandLeavesBehind(t *testing.T) {
	r := runScript(t, fakeTTL, fakeConfig(), "sleep 30 & exit 0", nil)
	if r.res.Lost != nil || r.res.Status.ExitCode() != 0 {
		t.Fatalf("Result = %+v; want the command's own exit 0, not lost", r.res)
	}
	if r.took >= fakeTerm {
		t.Errorf("Run took %v; the leftover sleep must be stopped at once", r.took)
	}
	wantEvents(t, r, "command_started", "notice", "command_exited", "released")
	if msg, _, _ := r.log.first("notice"); !strings.Contains(msg, "left processes behind") {
		t.Errorf("the notice %q does not say what was left behind", msg)
	}
}

func TestRunMinHold(t *testing.T) {
	cfg := fakeConfig()
	cfg.MinHold = 600 * time.Millisecond
	r := runScript(t, fakeTTL, cfg, "exit 0", nil)
	if r.res.Lost != nil || r.res.Status.ExitCode() != 0 || r.res.ReleaseErr != nil {
		t.Fatalf("Result = %+v; want a clean run", r.res)
	}
	if r.took < cfg.MinHold {
		t.Errorf("released %v after the grant, before --min-hold %v", r.took, cfg.MinHold)
	}
	wantEvents(t, r, "command_started", "command_exited", "released")
}

// TestRunMinHoldEndsWithTheLoss: a hold lost during --min-hold ends it at
// once; the command had finished, so the run is not lost.
func TestRunMinHoldEndsWithTheLoss(t *testing.T) {
	cfg := fakeConfig()
	cfg.MinHold = 10 * time.Second
	r := runScript(t, fakeTTL, cfg, "exit 0", func(h *fakeHold, log *eventRecorder) {
		go func() {
			log.waitFor(t, "command_exited")
			time.Sleep(200 * time.Millisecond)
			h.lose()
		}()
	})
	if r.res.Lost != nil || r.res.Status.ExitCode() != 0 || r.res.ReleaseErr != nil {
		t.Fatalf("Result = %+v; want the command's exit 0, not lost, no release error", r.res)
	}
	if r.took >= 5*time.Second {
		t.Errorf("Run took %v; the loss must end --min-hold at once", r.took)
	}
	wantEvents(t, r, "command_started", "command_exited")
}

// TestRunRecordsTheAcquisitionOnlyForACommandThatLasts: the record of the
// acquisition (one etcd write) is made once the command has run for a
// second, and not at all for a command that is over sooner.
func TestRunRecordsTheAcquisitionOnlyForACommandThatLasts(t *testing.T) {
	short := runScript(t, fakeTTL, fakeConfig(), "exit 0", nil)
	if n := short.hold.records(); n != 0 {
		t.Errorf("a command that exited at once: the acquisition was recorded %d times, want never", n)
	}
	long := runScript(t, fakeTTL, fakeConfig(), "exec sleep 3", nil)
	if n := long.hold.records(); n != 1 {
		t.Errorf("a command that ran 3s: the acquisition was recorded %d times, want once", n)
	}
}
