//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPauseClaimctl: the holder's claimctl process itself is frozen with
// SIGSTOP (a GC pause, a VM stall, a swap storm), its command running on.
//
//   - "shorter than the margin": three pauses of 400ms (the margin is 500ms
//     at TTL 3s), 600ms apart, change nothing: the command runs to its
//     natural end, claimctl exits 0, the waiter starts after it, and the
//     oracles hold.
//   - "longer than the TTL": the known limit of lease-based locks, and the
//     fencing token saving the data; see pauseLongerThanTheTTL.
func TestPauseClaimctl(t *testing.T) {
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl = 3 * time.Second

	t.Run("shorter than the margin", func(t *testing.T) {
		s := clNewScenario(t, cli, "pause-short")
		h := s.run(eps, "H", []string{"E2E_RUN_FOR=4s"}, "--ttl", "3s")
		rh := s.waitStarted(h, "H", clStartBound)
		w := s.run(eps, "W", []string{"E2E_RUN_FOR=200ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"])}, "--ttl", "3s")
		s.waitQueued(2)
		const pause, margin = 400 * time.Millisecond, 500 * time.Millisecond
		for range 3 {
			if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatalf("SIGSTOP claimctl: %v", err)
			}
			time.Sleep(pause)
			if err := h.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatalf("SIGCONT claimctl: %v", err)
			}
			time.Sleep(600 * time.Millisecond)
		}
		t.Logf("paused claimctl 3 x %v (margin %v)", pause, margin)
		s.checkUndisturbed(h, "H", 20*time.Second)
		if code := w.wait(clExitBound); code != 0 {
			t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
		}
		r := s.record()
		if r.starts["W"] <= r.ends["H"] {
			t.Fatalf("W's child started at %d, not after H's child ended at %d", r.starts["W"], r.ends["H"])
		}
		s.checkOracles(r, ttl+clElectionBound)
	})

	t.Run("longer than the TTL", func(t *testing.T) { pauseLongerThanTheTTL(t, cli, eps, ttl) })
}

// pauseLongerThanTheTTL documents the limit of every lease-based lock
// (README "What no lease-based lock can promise") and shows the fencing
// token saving the data. H's command is a loop that writes to the fenced
// store (E2E_STORE) with its fencing token every ~0.2s (each write by a
// fresh recorder, labelled H.1, H.2, ...); W waits in line and writes once
// when it starts. H's claimctl is then frozen for longer than the TTL, so
// it cannot stop its command on time:
//
//   - W takes over within TTL + election timeout + 1s of the freeze, while
//     H's command still runs: the overlap the known limit allows, asserted
//     here so that the scenario is known to have tested it.
//   - The fenced store rejects H's writes once W's (with a higher token)
//     is in: some H write after W's is rejected, and the store's writes are
//     in non-decreasing token order, with none of H's after W's first.
//   - On SIGCONT, H's claimctl kills its command's group at once (within
//     1s) and exits 76.
//   - Tokens rise (W's above H's) and each owned the claim in etcd's
//     history; the store kept every write it acknowledged; nothing is left
//     within TTL + clElectionBound.
func pauseLongerThanTheTTL(t *testing.T, cli *clientv3.Client, eps []string, ttl time.Duration) {
	s := clNewScenario(t, cli, "pause-long")
	pidFile := filepath.Join(t.TempDir(), "pid")
	loop := `echo $$ > "$CL_PID_FILE"; i=0; while :; do i=$((i+1)); E2E_LABEL="H.$i" "$0" -test.run='^$'; sleep 0.1; done`
	h := startClaimctl(t, eps,
		recorderEnv(s.log, "H.0", "E2E_STORE="+s.store, "E2E_RUN_FOR=1ms", "CL_PID_FILE="+pidFile),
		"run", "--ttl", "3s", s.name, "--", "/bin/sh", "-c", loop, os.Args[0])
	r0 := s.waitStarted(h, "H.1", clStartBound)
	b, err := os.ReadFile(pidFile)
	shPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || shPid <= 0 {
		t.Fatalf("H's command did not record its pid: %q, %v", b, err)
	}
	w := s.run(eps, "W", []string{"E2E_RUN_FOR=1s"}, "--ttl", "3s")
	s.waitQueued(2)

	if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP claimctl: %v", err)
	}
	stoppedAt := now()
	continued := false
	t.Cleanup(func() {
		if !continued {
			_ = h.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	upper := ttl + clElection + time.Second
	rw := s.waitStarted(w, "W", upper+10*time.Second)
	if took := time.Duration(rw.starts["W"] - stoppedAt); took > upper {
		t.Fatalf("W took over %v after H's claimctl froze; want at most TTL + election timeout + 1s = %v", took, upper)
	}
	var staleAfterW string
	waitFor(t, 3*time.Second, "one of H's writes after W's to be rejected by the store", func() bool {
		staleAfterW = clRejectedAfter(t, s.log, "W", "H.")
		return staleAfterW != ""
	})
	if d := time.Duration(now() - stoppedAt); d <= ttl {
		time.Sleep(ttl - d + 100*time.Millisecond)
	}
	paused := clDur(now() - stoppedAt)
	contAt := now()
	if err := h.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT claimctl: %v", err)
	}
	continued = true
	waitFor(t, time.Second, "H's command (the loop) to die within 1s of SIGCONT", func() bool { return !alive(shPid) })
	killed := clDur(now() - contAt)
	if code := h.wait(clExitBound); code != 76 {
		t.Fatalf("H: claimctl exited %d after the pause, want 76; stderr:\n%s", code, h.stderr)
	}
	if !strings.Contains(h.stderr.String(), "claim not held") {
		t.Fatalf("H's message does not say the claim was lost:\n%s", h.stderr)
	}
	if code := w.wait(clExitBound); code != 0 {
		t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
	}

	raw := s.record()
	for label, pid := range raw.pids {
		if strings.HasPrefix(label, "H.") && alive(pid) {
			t.Fatalf("%s (pid %d) of H's command outlived it", label, pid)
		}
	}
	merged := clMergeRuns(raw, "H.", "H")
	overlap := merged.ends["H"] > rw.starts["W"]
	t.Logf("paused %v; W's child started %v into the pause (H's fence %d, W's %d); H's command last wrote/alive %v after W started; the store refused %q; H's command dead %v after SIGCONT",
		paused, clDur(rw.starts["W"]-stoppedAt), r0.fences["H.1"], rw.fences["W"], clDur(merged.ends["H"]-rw.starts["W"]), staleAfterW, killed)
	if !overlap {
		t.Fatal("H's command did not outlive the hold, so this run did not exercise the known limit it documents")
	}
	clCheckStoreFenced(t, s.store, "W", "H.")
	checkTokensRise(t, merged)
	checkStoreKeptAcks(t, s.store, raw)
	checkNothingLeaked(t, cli, "claimctl/", ttl+clElectionBound)
	checkTokensOwnedInHistory(t, cli, "claimctl/"+s.name+"/", 1, merged)
}

// clRejectedAfter returns a "rejected" line by a recorder labelled with
// stalePrefix that the log holds after label's "ack" line, or "".
func clRejectedAfter(t *testing.T, log, label, stalePrefix string) string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		return ""
	}
	acked := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "ack" && f[1] == label:
			acked = true
		case acked && len(f) >= 2 && f[0] == "rejected" && strings.HasPrefix(f[1], stalePrefix):
			return line
		}
	}
	return ""
}

// clCheckStoreFenced fails unless the store's writes are in non-decreasing
// fencing-token order and no writer labelled with stalePrefix wrote after
// newer's first write.
func clCheckStoreFenced(t *testing.T, store, newer, stalePrefix string) {
	t.Helper()
	b, err := os.ReadFile(store)
	if err != nil {
		t.Fatalf("oracle 3: %v", err)
	}
	var prev int64
	seenNewer := false
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("oracle 3: store line %d is %q", i+1, line)
		}
		fence, _ := strconv.ParseInt(f[1], 10, 64)
		if fence < prev {
			t.Fatalf("oracle 3 (fencing): store line %d %q has a lower token than an earlier write (%d)", i+1, line, prev)
		}
		prev = fence
		if f[0] == newer {
			seenNewer = true
		} else if seenNewer && strings.HasPrefix(f[0], stalePrefix) {
			t.Fatalf("oracle 3 (fencing): the stale holder's write %q landed after %s's", line, newer)
		}
	}
	if !seenNewer {
		t.Fatalf("oracle 3: %s's write is not in the store", newer)
	}
}

// clMergeRuns returns r with the runs labelled prefix* (one holder's
// command, written as several recorders) merged into one interval labelled
// into: from the first start to the last sign of life, with their (common)
// fencing token.
func clMergeRuns(r record, prefix, into string) record {
	m := record{starts: map[string]int64{}, pids: map[string]int{}, fences: map[string]int64{}, acks: r.acks,
		grandkids: r.grandkids, lastAlive: map[string]int64{}, ends: map[string]int64{}, overlaps: r.overlaps, errorsSeen: r.errorsSeen}
	var labels []string
	for label := range r.starts {
		labels = append(labels, label)
	}
	sort.Strings(labels)
	for _, label := range labels {
		start, fence := r.starts[label], r.fences[label]
		last := max(r.ends[label], r.lastAlive[label], start)
		if strings.HasPrefix(label, prefix) {
			label = into
			if s, ok := m.starts[label]; ok {
				start = min(start, s)
				last = max(last, m.ends[label])
			}
		}
		m.starts[label], m.fences[label], m.pids[label] = start, fence, r.pids[label]
		m.ends[label], m.lastAlive[label] = last, last
	}
	return m
}
