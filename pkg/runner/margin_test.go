package runner

import (
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
)

// TestMarginCapIsTheLifeAfterWait ties --margin's cap to what Acquire
// guarantees a hold that waited: its lease proven alive for more than
// claim.MinLifeAfterWait(TTL). Every margin ValidateMargin accepts leaves
// such a hold's deadline (Expiry - margin) ahead of it, so Run starts the
// command of a correct handoff; a margin one nanosecond longer is refused.
func TestMarginCapIsTheLifeAfterWait(t *testing.T) {
	for _, ttl := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 10 * time.Second, time.Minute, time.Hour} {
		life := claim.MinLifeAfterWait(ttl)
		if life <= 0 || life >= ttl {
			t.Fatalf("MinLifeAfterWait(%v) = %v; want a positive part of the TTL", ttl, life)
		}
		if err := ValidateMargin(ttl, life); err != nil {
			t.Errorf("ttl %v: the largest margin that leaves a waited hold its start (%v) is refused: %v", ttl, life, err)
		}
		if ValidateMargin(ttl, life+time.Nanosecond) == nil {
			t.Errorf("ttl %v: margin %v accepted, which can put the deadline of a hold that waited behind it", ttl, life+time.Nanosecond)
		}
	}
}
