//go:build linux

package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestRunForwardsSignalsToTheWholeGroup: TERM and HUP sent to claimctl reach
// the command and its grandchild; claimctl exits as the command did.
func TestRunForwardsSignalsToTheWholeGroup(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			log := logPath(t)
			j := runRecorder(t, endpoints, log, "child", []string{"E2E_GRANDCHILD=1"}, "sig")
			r := waitStarted(t, log, "child", 15*time.Second)
			_ = j.cmd.Process.Signal(sig)
			if code := j.wait(10 * time.Second); code != 128+int(sig) {
				t.Fatalf("exit code %d, want %d (the command killed by %v); stderr:\n%s", code, 128+int(sig), sig, j.stderr)
			}
			if alive(r.pids["child"]) || alive(r.grandkids["child"]) {
				t.Fatalf("after %v: child alive=%v grandchild alive=%v; want both gone", sig, alive(r.pids["child"]), alive(r.grandkids["child"]))
			}
		})
	}
}

// TestRunKillsACommandThatIgnoresTerm: after the claim is lost, a command
// that ignores SIGTERM is SIGKILLed once the grace period is over, not before.
func TestRunKillsACommandThatIgnoresTerm(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	log := logPath(t)
	j := runRecorder(t, endpoints, log, "stubborn", []string{"E2E_IGNORE_TERM=1", "E2E_GRANDCHILD=1"}, "--grace", "1s", "stubborn")
	r := waitStarted(t, log, "stubborn", 15*time.Second)
	removed := time.Now()
	force := startClaimctl(t, endpoints, nil, "release", "--force", "stubborn")
	if code := force.wait(10 * time.Second); code != 0 {
		t.Fatalf("release --force exited %d: %s", code, force.stderr)
	}
	if code := j.wait(10 * time.Second); code != 76 {
		t.Fatalf("exit code %d, want 76; stderr:\n%s", code, j.stderr)
	}
	took := time.Since(removed)
	if took < 900*time.Millisecond {
		t.Fatalf("the command was gone %v after the claim was lost; a TERM-ignoring command must get the 1s grace", took)
	}
	if alive(r.pids["stubborn"]) || alive(r.grandkids["stubborn"]) {
		t.Fatal("the TERM-ignoring command or its grandchild survived")
	}
	if !strings.Contains(j.stderr.String(), "killed by signal KILL") {
		t.Fatalf("stderr does not say the command was killed by SIGKILL:\n%s", j.stderr)
	}
}

// TestRunStopsTheCommandWhenTheClaimIsRemovedOutOfBand: deleting the claim's
// key, or revoking its lease, behind claimctl's back stops the command
// within a bound.
func TestRunStopsTheCommandWhenTheClaimIsRemovedOutOfBand(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	cli := etcdClient(t, endpoints)
	for _, how := range []string{"delete key", "revoke lease"} {
		t.Run(how, func(t *testing.T) {
			log := logPath(t)
			name := strings.ReplaceAll(how, " ", "-")
			j := runRecorder(t, endpoints, log, "child", []string{"E2E_GRANDCHILD=1"}, "--grace", "500ms", name)
			r := waitStarted(t, log, "child", 15*time.Second)
			resp, err := cli.Get(ctx(t), "claimctl/"+name+"/", clientv3.WithPrefix())
			if err != nil || len(resp.Kvs) != 1 {
				t.Fatalf("reading the claim's key: %v, %d keys", err, len(resp.Kvs))
			}
			at := time.Now()
			if how == "delete key" {
				_, err = cli.Delete(ctx(t), string(resp.Kvs[0].Key))
			} else {
				_, err = cli.Revoke(ctx(t), clientv3.LeaseID(resp.Kvs[0].Lease))
			}
			if err != nil {
				t.Fatal(err)
			}
			if code := j.wait(10 * time.Second); code != 76 {
				t.Fatalf("exit code %d, want 76; stderr:\n%s", code, j.stderr)
			}
			if took := time.Since(at); took > 3*time.Second {
				t.Fatalf("the command was stopped %v after the claim was removed; want well under 3s", took)
			}
			if alive(r.pids["child"]) || alive(r.grandkids["child"]) {
				t.Fatal("the command or its grandchild survived the lost claim")
			}
			if !strings.Contains(j.stderr.String(), "claim not held") {
				t.Fatalf("stderr does not explain the loss:\n%s", j.stderr)
			}
		})
	}
}

// TestRunCommandDiesWithClaimctl: SIGKILL of claimctl kills the command and
// its grandchild within a second.
func TestRunCommandDiesWithClaimctl(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	log := logPath(t)
	j := runRecorder(t, endpoints, log, "orphan", []string{"E2E_GRANDCHILD=1"}, "orphan")
	r := waitStarted(t, log, "orphan", 15*time.Second)
	_ = j.cmd.Process.Kill()
	j.wait(5 * time.Second)
	deadline := time.Now().Add(time.Second)
	for alive(r.pids["orphan"]) || alive(r.grandkids["orphan"]) {
		if time.Now().After(deadline) {
			t.Fatalf("1s after claimctl was SIGKILLed: command state %q, grandchild state %q; want both dead",
				procState(r.pids["orphan"]), procState(r.grandkids["orphan"]))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunNetworkCutStopsTheCommandBeforeTheNextHolderStarts: claimctl A
// reaches etcd through a proxy that is then cut; B, connected directly,
// waits for the claim. A's command group must be dead before B's command
// starts, as recorded by the processes themselves.
func TestRunNetworkCutStopsTheCommandBeforeTheNextHolderStarts(t *testing.T) {
	m := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, m.Endpoints()[0])
	log := logPath(t)
	a := runRecorder(t, []string{proxy.Endpoint()}, log, "A", []string{"E2E_GRANDCHILD=1"}, "--ttl", "3s", "--grace", "1s", "cut")
	ra := waitStarted(t, log, "A", 15*time.Second)
	b := runRecorder(t, m.Endpoints(), log, "B", []string{"E2E_MUST_BE_DEAD=" + itoa(ra.pids["A"]) + " " + itoa(ra.grandkids["A"])}, "--ttl", "3s", "cut")
	waitFor(t, 10*time.Second, "B to queue behind A", func() bool { return strings.Contains(statusJSON(t, m.Endpoints(), "cut"), `"waiters": [`+"\n") })

	cutAt := now()
	proxy.Blackhole()
	if code := a.wait(15 * time.Second); code != 76 {
		t.Fatalf("A exit code %d, want 76; stderr:\n%s", code, a.stderr)
	}
	rb := waitStarted(t, log, "B", 15*time.Second)
	r, _ := readRecord(log)
	if len(r.overlaps) > 0 {
		t.Fatalf("B started while A's command group was alive: %v", r.overlaps)
	}
	if !(r.lastAlive["A"] < rb.starts["B"]) {
		t.Fatalf("A's command was last alive at %d, after B's command started at %d", r.lastAlive["A"], rb.starts["B"])
	}
	t.Logf("cut→A's last sign of life %v; cut→B started %v; gap %v",
		time.Duration(r.lastAlive["A"]-cutAt), time.Duration(rb.starts["B"]-cutAt), time.Duration(rb.starts["B"]-r.lastAlive["A"]))
	if !strings.Contains(a.stderr.String(), "etcd has not acknowledged a renewal") {
		t.Fatalf("A's message does not say why the claim was lost:\n%s", a.stderr)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.wait(10 * time.Second)
}

// TestRunShortCutLeavesTheCommandAlone: a cut shorter than the slack the
// deadline leaves does not disturb the command. The SIGTERM comes
// TTL - margin - grace after the send time of the last acknowledged renewal
// (6s - 0.6s - 1.4s = 4s here), that renewal was sent at most TTL/10 before
// the cut, and one is sent every TTL/10 during it, so a cut shorter than
// TTL - margin - grace - 2TTL/10 (2.8s) ends with a renewal acknowledged in
// time.
func TestRunShortCutLeavesTheCommandAlone(t *testing.T) {
	m := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, m.Endpoints()[0])
	log := logPath(t)
	j := runRecorder(t, []string{proxy.Endpoint()}, log, "calm", []string{"E2E_RUN_FOR=4s"}, "--ttl", "6s", "calm")
	waitStarted(t, log, "calm", 15*time.Second)
	proxy.Blackhole()
	time.Sleep(time.Second)
	proxy.Unblackhole()
	if code := j.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d after a 1s cut, want 0; stderr:\n%s", code, j.stderr)
	}
	r, _ := readRecord(log)
	if r.ends["calm"] == 0 {
		t.Fatal("the command did not run to its end")
	}
}

// TestRunCannotBeSuspended: Ctrl-Z (SIGTSTP) neither stops claimctl nor
// reaches the command. A stopped claimctl would not renew the claim or stop
// the command when the claim ran out, and the command would run on past its
// lease; so run says it cannot be suspended and carries on, and the command
// finishes normally.
func TestRunCannotBeSuspended(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	log := logPath(t)
	j := runRecorder(t, endpoints, log, "child", []string{"E2E_RUN_FOR=1500ms"}, "--ttl", "3s", "tstp")
	r := waitStarted(t, log, "child", 15*time.Second)
	if err := j.cmd.Process.Signal(syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if st := procState(j.cmd.Process.Pid); st == "T" || st == "t" {
		t.Fatalf("claimctl is stopped (state %s) after SIGTSTP; it must refuse to be suspended", st)
	}
	if st := procState(r.pids["child"]); st == "T" || st == "t" {
		t.Fatalf("the command is stopped (state %s) after SIGTSTP to claimctl", st)
	}
	if code := j.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0 (the command ran to its end); stderr:\n%s", code, j.stderr)
	}
	if !strings.Contains(j.stderr.String(), "run cannot be suspended") {
		t.Fatalf("stderr does not say that run cannot be suspended:\n%s", j.stderr)
	}
}
