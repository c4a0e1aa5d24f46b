package runmetrics_test

import (
	"os"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// TestReleasedEndsTheAcquiredHold: acquire leaves the file holding; the
// release of that very hold (same fencing token) turns it into an ok run
// with the acquire's wait and start, and a success; a release of another
// hold leaves the file alone.
func TestReleasedEndsTheAcquiredHold(t *testing.T) {
	dir := t.TempDir() + "/"
	t0 := time.Unix(1_800_000_000, 0)
	held := runmetrics.Report{Claim: "deploy", Outcome: runmetrics.Holding, Started: t0, Acquired: t0.Add(2 * time.Second), FencingToken: 7}
	if err := runmetrics.Write(dir, held); err != nil {
		t.Fatal(err)
	}
	file := runmetrics.FileFor(dir, "deploy")
	before, _ := os.ReadFile(file)

	if done, err := runmetrics.Released(dir, "deploy", 8, t0.Add(time.Minute)); done || err != nil {
		t.Fatalf("release of another hold: %v, %v; want the file left alone", done, err)
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Fatal("the release of another hold rewrote the file")
	}
	if done, err := runmetrics.Released(dir, "deploy", 7, t0.Add(time.Minute)); !done || err != nil {
		t.Fatalf("release of the hold: %v, %v", done, err)
	}
	g := parse(t, file)
	for _, c := range []struct {
		name, key string
		want      float64
	}{
		{"claimctl_last_run_outcome", "deploy/ok", 1},
		{"claimctl_last_run_outcome", "deploy/holding", 0},
		{"claimctl_holding", "deploy", 0},
		{"claimctl_last_run_wait_seconds", "deploy", 2},
		{"claimctl_last_run_hold_seconds", "deploy", 58},
		{"claimctl_last_run_fencing_token", "deploy", 7},
		{"claimctl_last_success_timestamp_seconds", "deploy", 1_800_000_060},
		{"claimctl_hold_start_timestamp_seconds", "deploy", 1_800_000_002},
	} {
		if got, ok := g[c.name][c.key]; !ok || got != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.name, c.key, got, ok, c.want)
		}
	}
	if done, err := runmetrics.Released(dir, "deploy", 7, t0.Add(2*time.Minute)); done || err != nil {
		t.Fatalf("a second release of the hold: %v, %v; the file no longer says holding", done, err)
	}
}
