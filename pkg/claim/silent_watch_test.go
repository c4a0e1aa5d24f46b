package claim_test

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/claimctl/claimctl/pkg/claim"
)

// silentWatchStream is a watch stream that goes silent after it has
// delivered `delivered` messages: it delivers nothing more and never fails,
// which is what TestNemesis found a partition healed mid-frame can leave
// behind, while unary requests and renewals go on working.
type silentWatchStream struct {
	grpc.ClientStream
	delivered int
}

func (s *silentWatchStream) RecvMsg(m any) error {
	if s.delivered > 0 {
		s.delivered--
		return s.ClientStream.RecvMsg(m)
	}
	<-s.Context().Done()
	return s.Context().Err()
}

// TestWaiterWithASilentWatchStillTakesItsTurn: a waiter whose watch goes
// silent without failing, once created or before etcd acknowledges its
// creation, reads the queue again once per TTL whatever the watch says
// (watchAhead's bound on each watch), so it takes the claim after the
// holder leaves instead of waiting while its renewals keep its place
// forever. Without the bound the waiter would still be waiting at its
// deadline.
func TestWaiterWithASilentWatchStillTakesItsTurn(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delivered int
	}{{"silent once created", 1}, {"creation never acknowledged", 0}} {
		t.Run(tc.name, func(t *testing.T) { testSilentWatch(t, tc.delivered) })
	}
}

func testSilentWatch(t *testing.T, delivered int) {
	c := newCluster(t)
	silent := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/etcdserverpb.Watch/Watch" {
			return s, err
		}
		return &silentWatchStream{ClientStream: s, delivered: delivered}, nil
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{silent}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deaf, err := claim.New(cli, claim.Options{Prefix: "test/", RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	o := opts("silent")
	o.TTL = 2 * time.Second
	holder, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	// The waiter's deadline is many backstop periods away, and far longer
	// than the lease proofs its renewals keep extending.
	waiter := acquireAsync(t, ctxT(t, 30*time.Second), deaf, o)
	c.awaitContenders("silent", 2)
	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	r := recv(t, waiter, "the waiter with a silent watch")
	if r.err != nil {
		t.Fatalf("the waiter with a silent watch: %v; want the claim, taken at its next re-read", r.err)
	}
	if r.hold.Revision <= holder.Revision {
		t.Errorf("fencing token %d after the holder's %d; want it higher", r.hold.Revision, holder.Revision)
	}
	if err := r.hold.Release(); err != nil {
		t.Fatal(err)
	}
}
