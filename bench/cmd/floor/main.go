// Command floor is the least a Go etcd client can do to hold a claim for a
// command's life, for comparison with claimctl run and etcdctl lock: the
// same keys and round trips as an uncontended `claimctl run` (LeaseGrant,
// one Txn that creates the key and reads the head of the queue, then
// LeaseRevoke after the command), and nothing else: no flags package, no
// configuration, no metadata, no renewals, no watch, no guardian, no
// process group, no waiting. It refuses a busy claim (exit 75). It is not a
// lock tool: it shows what part of a run's latency any Go client pays
// (start-up, gRPC connection, raft writes, fork/exec) and what part is
// claimctl's own.
//
// Usage: floor ENDPOINT NAME CMD [ARGS...]
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: floor ENDPOINT NAME CMD [ARGS...]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1], os.Args[2], os.Args[3:]))
}

func run(endpoint, name string, argv []string) int {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 69
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := cli.Grant(ctx, 10)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		return 69
	}
	pfx := "claimctl/" + name + "/"
	key := fmt.Sprintf("%s%x", pfx, int64(g.ID))
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, "", clientv3.WithLease(g.ID)),
			clientv3.OpGet(pfx, clientv3.WithFirstCreate()...)).
		Commit()
	if err == nil && (len(resp.Responses[1].GetResponseRange().Kvs) == 0 ||
		resp.Responses[1].GetResponseRange().Kvs[0].CreateRevision != resp.Header.Revision) {
		err = fmt.Errorf("claim %s is busy", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		cli.Revoke(context.Background(), g.ID)
		return 75
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), fmt.Sprintf("CLAIMCTL_FENCING_TOKEN=%d", resp.Header.Revision))
	runErr := cmd.Run()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if _, err := cli.Revoke(rctx, g.ID); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
	}
	if runErr != nil {
		if cmd.ProcessState != nil {
			return cmd.ProcessState.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "floor:", runErr)
		return 127
	}
	return 0
}
