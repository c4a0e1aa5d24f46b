package claim_test

import (
	"errors"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
)

// TestEditedTokenNeverTouchesTheHoldWhoseLeaseItCarries: a token whose name
// or prefix part was edited carries another hold's lease and revision but
// names a key that does not exist. Renewing or releasing it is "not held",
// and the hold whose lease it carries keeps its key and its lease: renew
// must not revoke a lease that still has keys attached.
func TestEditedTokenNeverTouchesTheHoldWhoseLeaseItCarries(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	victim, err := cl.Acquire(ctxT(t, 10*time.Second), opts("victim"))
	if err != nil {
		t.Fatal(err)
	}
	otherName := victim.Token()
	otherName.Name = "other"
	otherPrefix := victim.Token()
	otherPrefix.Prefix = "elsewhere/"
	for _, tok := range []claim.Token{otherName, otherPrefix} {
		if _, err := cl.Renew(ctxT(t, 5*time.Second), tok); !errors.Is(err, claim.ErrNotHeld) {
			t.Fatalf("renew of %s: %v, want ErrNotHeld", tok, err)
		}
		if err := cl.Release(ctxT(t, 5*time.Second), tok); !errors.Is(err, claim.ErrNotHeld) {
			t.Fatalf("release of %s: %v, want ErrNotHeld", tok, err)
		}
		if !c.leaseAlive(victim.Lease) {
			t.Fatalf("the edited token %s revoked the lease of the hold it was copied from", tok)
		}
		if k := c.keys(); len(k) != 1 || k[0] != victim.Key {
			t.Fatalf("keys after using the edited token %s: %v; want only %s", tok, k, victim.Key)
		}
	}
	if _, err := cl.Renew(ctxT(t, 5*time.Second), victim.Token()); err != nil {
		t.Fatalf("the real token no longer renews: %v", err)
	}
}

// TestRenewCleansUpALeaseWithNothingAttached: when a hold's key was removed
// behind its back (and its lease was not revoked), renewing its token is
// "not held" and revokes the lease, which has nothing attached, so that it
// is not left behind.
func TestRenewCleansUpALeaseWithNothingAttached(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	h, err := cl.Acquire(ctxT(t, 10*time.Second), opts("bare"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.Delete(ctxT(t, 5*time.Second), h.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Renew(ctxT(t, 5*time.Second), h.Token()); !errors.Is(err, claim.ErrNotHeld) {
		t.Fatalf("renew after the key was deleted: %v, want ErrNotHeld", err)
	}
	if c.leaseAlive(h.Lease) {
		t.Fatal("the lease with nothing attached was left behind")
	}
}
