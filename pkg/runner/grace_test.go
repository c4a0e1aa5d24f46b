package runner

import (
	"testing"
	"time"
)

func TestDefaultMarginAndGraceCap(t *testing.T) {
	cases := []struct {
		ttl, margin, grace time.Duration
	}{
		// ttl, default margin, effective grace for a requested 5s
		{60 * time.Second, 5 * time.Second, 5 * time.Second},
		{10 * time.Second, time.Second, 2*time.Second + 333333334*time.Nanosecond},
		{3 * time.Second, 500 * time.Millisecond, 500 * time.Millisecond},
		{2 * time.Second, 500 * time.Millisecond, 166666667 * time.Nanosecond},
		{time.Hour, 5 * time.Second, 5 * time.Second},
	}
	for _, c := range cases {
		m := DefaultMargin(c.ttl)
		if m != c.margin {
			t.Errorf("DefaultMargin(%v) = %v, want %v", c.ttl, m, c.margin)
		}
		g := EffectiveGrace(c.ttl, m, 5*time.Second)
		if g != c.grace {
			t.Errorf("EffectiveGrace(%v, %v, 5s) = %v, want %v", c.ttl, m, g, c.grace)
		}
		// The promise: SIGTERM comes no earlier than 2TTL/3 after the
		// send time of the last acknowledged renewal, by when at least six
		// renewals (due every TTL/10) have gone unanswered; SIGKILL comes
		// before expiry (a valid margin).
		if term := c.ttl - m - g; term < 2*c.ttl/3 {
			t.Errorf("ttl %v: SIGTERM at %v after the last acknowledged renewal was sent, before 2TTL/3 (%v)", c.ttl, term, 2*c.ttl/3)
		}
		if err := ValidateMargin(c.ttl, m); err != nil {
			t.Errorf("the default margin %v for ttl %v is invalid: %v", m, c.ttl, err)
		}
	}
	if EffectiveGrace(10*time.Second, 5*time.Second, 5*time.Second) != 0 {
		t.Error("a margin leaving no room must give no grace, not a negative one")
	}
	for _, bad := range []time.Duration{0, -time.Second, 31 * time.Second} {
		if ValidateMargin(60*time.Second, bad) == nil {
			t.Errorf("ValidateMargin(60s, %v) = nil, want an error", bad)
		}
	}
}
