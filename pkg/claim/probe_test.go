package claim_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/claim"
)

// TestProbeWriteLeavesNothing: doctor's write check writes and removes its
// key, revokes its lease, and its key is outside every claim: the name it
// uses is one no claim may have.
func TestProbeWriteLeavesNothing(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	held, err := cl.Acquire(ctxT(t, 10*time.Second), opts("doctor"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProbeWrite(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("ProbeWrite: %v", err)
	}
	if keys := c.keys(); len(keys) != 1 || keys[0] != held.Key {
		t.Errorf("keys after the probe: %v; want only the holder's %s", keys, held.Key)
	}
	leases, err := c.admin.Leases(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 1 || int64(leases.Leases[0].ID) != held.Lease {
		t.Errorf("leases after the probe: %v; want only the holder's %x", leases.Leases, held.Lease)
	}
	probe := cl.Keyspace().ProbeKey(1)
	name, _, _ := strings.Cut(strings.TrimPrefix(probe, cl.Keyspace().Prefix()), "/")
	if err := claim.ValidateName(name); err == nil {
		t.Errorf("the probe's key %q is under %q, a valid claim name; it must be one no claim can have", probe, name)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestProbeWriteNeedsWriteAccess: without write access under the prefix the
// probe fails as a claim would, with ErrPermission.
func TestProbeWriteNeedsWriteAccess(t *testing.T) {
	c := newCluster(t)
	ctx := ctxT(t, 10*time.Second)
	for _, step := range []func() error{
		func() error { _, err := c.admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.admin.UserAdd(ctx, "root", "pw"); return err },
		func() error { _, err := c.admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.admin.RoleAdd(ctx, "reader"); return err },
		func() error {
			_, err := c.admin.RoleGrantPermission(ctx, "reader", "test/", clientv3.GetPrefixRangeEnd("test/"), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := c.admin.UserAdd(ctx, "reader", "pw"); return err },
		func() error { _, err := c.admin.UserGrantRole(ctx, "reader", "reader"); return err },
		func() error { _, err := c.admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Username: "reader", Password: "pw", Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cl, err := claim.New(cli, claim.Options{Prefix: "test/", RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProbeWrite(ctx); !errors.Is(err, claim.ErrPermission) {
		t.Errorf("ProbeWrite with read access only: %v; want ErrPermission", err)
	}
}
