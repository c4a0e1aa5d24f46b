//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// contentionRuns is how many runs each of the 16 processes makes: 50 in
// the default run (it must fit CI's time on 2 cores under -race), 200 with
// CLAIMCTL_E2E_FULL=1, 20 with -short.
func contentionRuns() int {
	switch {
	case os.Getenv("CLAIMCTL_E2E_FULL") == "1":
		return 200
	case testing.Short():
		return 20
	}
	return 50
}

// TestContentionMutex: 16 processes each run a 5ms critical section many
// times on one claim. No two ever overlap, tokens rise in start order (which
// is FIFO: tokens are queue positions), every token owned the claim in
// etcd's history, the fenced store keeps every acknowledged write, every
// run eventually runs, and nothing is left behind.
func TestContentionMutex(t *testing.T) { contention(t, 16, contentionRuns(), 1) }

// TestContentionSemaphore: the same with --limit 3.
func TestContentionSemaphore(t *testing.T) { contention(t, 16, contentionRuns()/2, 3) }

func contention(t *testing.T, procs, runs, limit int) {
	m := etcdtest.Start(t)
	cli := etcdClient(t, m.Endpoints())
	dir := t.TempDir()
	log, store := filepath.Join(dir, "events.log"), filepath.Join(dir, "store")
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, procs*runs)
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range runs {
				label := fmt.Sprintf("p%02d-%03d", p, i)
				j := runRecorder(t, m.Endpoints(), log, label, []string{"E2E_RUN_FOR=5ms", "E2E_STORE=" + store},
					"--limit", fmt.Sprint(limit), "--ttl", "5s", "hot")
				select {
				case <-j.done:
					if j.code != 0 {
						errs <- fmt.Sprintf("%s: exit %d: %s", label, j.code, j.stderr)
					}
				case <-time.After(2 * time.Minute):
					errs <- label + ": did not finish within 2m"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	elapsed := time.Since(start)
	r, err := readRecord(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.starts) != procs*runs || len(r.errorsSeen) > 0 {
		t.Fatalf("%d of %d runs recorded a start; errors: %v", len(r.starts), procs*runs, r.errorsSeen)
	}
	checkNoOverlap(t, r, limit)
	if limit == 1 {
		checkTokensRise(t, r)
	}
	checkTokensOwnedInHistory(t, cli, "claimctl/hot/", limit, r)
	checkStoreKeptAcks(t, store, r)
	if limit == 1 && len(r.acks) != procs*runs {
		t.Fatalf("oracle 3: the store accepted %d of %d writes from a mutex's holders; a correct mutex never writes with a stale token", len(r.acks), procs*runs)
	}
	checkNothingLeaked(t, cli, "claimctl/", 10*time.Second)
	t.Logf("%d processes x %d runs, limit %d: %v, %.1f sections/s", procs, runs, limit, elapsed.Round(time.Millisecond), float64(procs*runs)/elapsed.Seconds())
}
