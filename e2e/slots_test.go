//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestContentionSlotsNeverShared: processes contend on a --limit 3 claim
// with `claimctl run`, and some holders are SIGKILLed mid-hold (their slot
// frees only when their lease expires). Each child records $CLAIMCTL_SLOT:
// no two holds that overlap in time ever share a slot, every slot is in
// 0..2, the limit is never exceeded, and nothing is left behind.
func TestContentionSlotsNeverShared(t *testing.T) {
	const procs, runs, limit = 8, 6, 3
	m := etcdtest.Start(t)
	cli := etcdClient(t, m.Endpoints())
	log := filepath.Join(t.TempDir(), "events.log")
	var wg sync.WaitGroup
	errs := make(chan string, procs*runs)
	for p := range procs {
		wg.Go(func() {
			for i := range runs {
				label := fmt.Sprintf("p%02d-%03d", p, i)
				kill := (p+i)%7 == 3
				runFor := "20ms"
				if kill {
					runFor = "1h"
				}
				j := runRecorder(t, m.Endpoints(), log, label, []string{"E2E_RUN_FOR=" + runFor},
					"--limit", strconv.Itoa(limit), "--ttl", "2s", "hot")
				if kill {
					deadline := time.Now().Add(time.Minute)
					for {
						r, _ := readRecord(log)
						if r.starts[label] != 0 || j.exited() || time.Now().After(deadline) {
							break
						}
						time.Sleep(10 * time.Millisecond)
					}
					_ = j.cmd.Process.Kill()
				}
				select {
				case <-j.done:
					if !kill && j.code != 0 {
						errs <- fmt.Sprintf("%s: exit %d: %s", label, j.code, j.stderr)
					}
				case <-time.After(2 * time.Minute):
					errs <- label + ": did not finish within 2m"
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	r, err := readRecord(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.starts) != procs*runs {
		t.Fatalf("%d of %d runs recorded a start", len(r.starts), procs*runs)
	}
	checkNoOverlap(t, r, limit)
	ivs := r.intervals()
	for i, a := range ivs {
		slot, err := strconv.Atoi(r.slots[a.label])
		if err != nil || slot < 0 || slot >= limit {
			t.Fatalf("%s ran with CLAIMCTL_SLOT %q, want 0 to %d", a.label, r.slots[a.label], limit-1)
		}
		for _, b := range ivs[i+1:] {
			if b.start < a.end && r.slots[b.label] == r.slots[a.label] {
				t.Fatalf("slots are shared: %s and %s ran at once in slot %s", a.label, b.label, r.slots[a.label])
			}
		}
	}
	checkNothingLeaked(t, cli, "claimctl/", 15*time.Second)
}
