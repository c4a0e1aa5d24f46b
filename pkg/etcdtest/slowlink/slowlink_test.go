package slowlink_test

import (
	"context"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
	"github.com/claimctl/claimctl/pkg/etcdtest/slowlink"
)

// TestLinkLatency: a request through a Link takes its round trip once, and
// requests in flight together overlap instead of queueing behind each
// other's delays.
func TestLinkLatency(t *testing.T) {
	m := etcdtest.Start(t)
	l, err := slowlink.New(m.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	cli := etcdtest.NewClient(t, l.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}

	const latency = 150 * time.Millisecond
	l.SetLatency(latency)
	start := time.Now()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := cli.Get(ctx, "k")
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	d := time.Since(start)
	if d < 2*latency {
		t.Errorf("%d gets with %v latency each way took %v, want at least one round trip, %v", n, latency, d, 2*latency)
	}
	// Eight requests in flight at once take about one round trip; had each
	// waited for the delays of those before it, they would take eight.
	if d > 5*2*latency {
		t.Errorf("%d concurrent gets with %v latency each way took %v: the delays queued behind each other", n, latency, d)
	}
	l.SetLatency(0)
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Errorf("get after the latency was removed: %v", err)
	}
}
