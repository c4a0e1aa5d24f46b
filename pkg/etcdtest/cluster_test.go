//go:build linux || darwin

package etcdtest

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/version"
)

// electionBound is how long a test allows for a new leader after the old one
// dies: the followers notice after an election timeout (randomised up to 2x),
// then pre-vote and vote, with slack for a loaded CI machine.
const electionBound = 5 * time.Second

func TestClusterKillLeaderRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process etcd cluster")
	}
	c := StartCluster(t, 3, ClusterOptions{})
	if c.Size() != 3 || len(c.Endpoints()) != 3 {
		t.Fatalf("Size() = %d, Endpoints() = %v; want 3", c.Size(), c.Endpoints())
	}
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "before", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}

	old := c.WaitLeader(ctx)
	leader := c.Member(old)
	pid := leader.Pid()
	leader.Kill()
	if leader.Running() {
		t.Fatalf("%s still running after Kill", leader.Name())
	}

	start := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, electionBound)
	next := c.WaitLeader(wctx)
	wcancel()
	if next == old {
		t.Fatalf("leader is still the killed member %s", leader.Name())
	}
	t.Logf("new leader %s elected %v after SIGKILL of %s", c.Member(next).Name(), time.Since(start), leader.Name())

	// The two survivors are a quorum.
	if _, err := NewClient(t, c.Member(next).Endpoint()).Put(ctx, "during", "2"); err != nil {
		t.Fatalf("put with %s down: %v", leader.Name(), err)
	}

	leader.Restart()
	if leader.Pid() == pid || !leader.Running() {
		t.Fatalf("%s not running as a new process after Restart (pid %d, was %d)", leader.Name(), leader.Pid(), pid)
	}
	c.WaitHealthy(ctx)

	// The restarted member has the write it missed.
	resp, err := NewClient(t, leader.Endpoint()).Get(ctx, "during")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("get via restarted %s = %v, %v; want 2", leader.Name(), resp, err)
	}
	members, err := cli.MemberList(ctx)
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("member list = %v, %v; want 3 members", members, err)
	}
}

func TestClusterStopCont(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process etcd cluster")
	}
	c := StartCluster(t, 3, ClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := c.WaitLeader(ctx)
	follower := c.Member((leader + 1) % c.Size())

	follower.Stop()
	if !follower.Running() {
		t.Fatalf("%s not running after Stop", follower.Name())
	}
	// A request to the stopped member hangs rather than failing.
	fcli := NewClient(t, follower.Endpoint())
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := fcli.Get(sctx, "k")
	scancel()
	if err == nil {
		t.Fatalf("get via stopped %s succeeded", follower.Name())
	}
	// The others still make a quorum.
	c.WaitHealthy(ctx)
	if _, err := NewClient(t, c.Member(leader).Endpoint()).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put with %s stopped: %v", follower.Name(), err)
	}

	follower.Cont()
	c.WaitHealthy(ctx)
	// A linearizable read via the continued member sees the write.
	resp, err := fcli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get via continued %s = %v, %v; want the write", follower.Name(), resp, err)
	}
}

func TestClusterSingleMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd process")
	}
	c := StartCluster(t, 1, ClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := c.WaitLeader(ctx); got != 0 {
		t.Fatalf("WaitLeader = %d, want 0", got)
	}
	m := c.Member(0)
	// claimctl-server embeds this module's etcd; EtcdEnv's is its own.
	want := version.Version
	if e, err := upstreamEtcd(); err != nil {
		t.Fatal(err)
	} else if e != nil {
		want = e.version
	}
	if st, err := c.Client(t).Status(ctx, m.Endpoint()); err != nil || st.Version != want {
		t.Fatalf("Status = %v, %v; want version %s", st, err, want)
	}
	if _, err := c.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	if _, err := c.Leader(ctx); err == nil {
		t.Fatal("Leader() with the only member killed succeeded")
	}
	m.Restart()
	resp, err := c.Client(t).Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get after restart = %v, %v; want the write", resp, err)
	}
}

func TestClusterLoseQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process etcd cluster")
	}
	c := StartCluster(t, 3, ClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	survivor := c.Member(0)
	c.Member(1).Kill()
	c.Member(2).Kill()

	// One of three cannot commit.
	cli := NewClient(t, survivor.Endpoint())
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	_, err := cli.Put(pctx, "k", "v")
	pcancel()
	if err == nil {
		t.Fatal("put with 1 of 3 members succeeded")
	}

	// Each becomes ready only with the other, so restart both at once.
	c.Restart(1, 2)
	c.WaitHealthy(ctx)
	if _, err := c.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put after quorum is back: %v", err)
	}
}
