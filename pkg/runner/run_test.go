//go:build linux

package runner_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdtest"
	"github.com/claimctl/claimctl/pkg/runner"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// TestRunNeverStartsACommandOnAnUnprovenHold: when the hold can no longer be
// proven by the time the command would start (its last acknowledged renewal
// is older than TTL - margin: the waiter was frozen, or etcd slow, between
// the acquisition and the start), run releases the claim and does not start
// the command at all.
func TestRunNeverStartsACommandOnAnUnprovenHold(t *testing.T) {
	m := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: m.Endpoints(), DialTimeout: etcdtest.DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	claims, err := claim.New(cli, claim.Options{Prefix: "runner/", RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := claims.Acquire(ctx, claim.AcquireOptions{Name: "unproven", TTL: etcdtest.MinLeaseTTL, Limit: 1, Holder: claim.Holder{Owner: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	margin := h.TTL / 2
	// No renewal is sent (the hold is not kept yet): wait until what the
	// grant proves runs out.
	time.Sleep(h.TTL - margin + 100*time.Millisecond)

	marker := filepath.Join(t.TempDir(), "started")
	child, err := supervise.Prepare(supervise.Spec{Path: "/bin/sh", Args: []string{"-c", "touch " + marker}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.Run(ctx, runner.Config{Hold: h, Name: h.Name, TTL: h.TTL, Revision: h.Revision, NotHeld: claim.ErrNotHeld, Child: child, Margin: margin, Grace: time.Second})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Started || !errors.Is(res.Lost, claim.ErrNotHeld) {
		t.Fatalf("Run = %+v; want the command not started and the hold reported lost", res)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran although the hold could not be proven")
	}
	st, err := claims.Status(ctx, "unproven")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 0 {
		t.Fatalf("the claim is still held after Run refused to start: %+v", st.Holders)
	}
}
