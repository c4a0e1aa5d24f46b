package claim

import (
	"fmt"
	"time"
)

// MaxTTL is the longest TTL etcd grants (it refuses more than about 9e9 s);
// claimctl stops well before that.
const MaxTTL = 365 * 24 * time.Hour

// MaxLimit bounds the slot limit of a semaphore.
const MaxLimit = 10000

// ValidateTTL reports why ttl cannot be a lease TTL. etcd counts TTLs in whole
// seconds, so sub-second parts are refused rather than silently dropped.
func ValidateTTL(ttl time.Duration) error {
	switch {
	case ttl <= 0:
		return fmt.Errorf("%w: %v; the TTL must be positive, e.g. --ttl 30s", ErrInvalidTTL, ttl)
	case ttl > MaxTTL:
		return fmt.Errorf("%w: %v is longer than the maximum %v", ErrInvalidTTL, ttl, MaxTTL)
	case ttl%time.Second != 0:
		// Suggest the next whole second up: the TTL is how long a crashed
		// holder keeps the claim, and rounding down could suggest 0s.
		return fmt.Errorf("%w: %v; etcd leases count whole seconds, e.g. --ttl %v", ErrInvalidTTL, ttl, ttl.Truncate(time.Second)+time.Second)
	}
	return nil
}

// ValidateLimit reports why limit cannot be a slot limit.
func ValidateLimit(limit int) error {
	if limit < 1 || limit > MaxLimit {
		return fmt.Errorf("%w: %d; use 1 (a mutex) up to %d holders at once", ErrInvalidLimit, limit, MaxLimit)
	}
	return nil
}
