package claim

import (
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
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

// MaxSlotNameLen is the longest slot name accepted, in bytes.
const MaxSlotNameLen = 200

// ValidateSlots reports why names cannot be a pool of named slots, or nil.
// Slot names are exported to commands as CLAIMCTL_SLOT and shown by status,
// so, like claim names, they must be non-empty, distinct, and free of
// whitespace and control characters.
func ValidateSlots(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: the list of slot names is empty; give names separated by commas, e.g. --slots db-1,db-2", ErrInvalidSlots)
	}
	if len(names) > MaxLimit {
		return fmt.Errorf("%w: %d slot names; use at most %d", ErrInvalidSlots, len(names), MaxLimit)
	}
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		switch {
		case n == "":
			return fmt.Errorf("%w: slot name %d of %d is empty; separate names with single commas, e.g. --slots db-1,db-2", ErrInvalidSlots, i+1, len(names))
		case len(n) > MaxSlotNameLen:
			return fmt.Errorf("%w: slot name %d is %d bytes long; use at most %d", ErrInvalidSlots, i+1, len(n), MaxSlotNameLen)
		case !utf8.ValidString(n):
			return fmt.Errorf("%w: slot name %q is not valid UTF-8", ErrInvalidSlots, n)
		case seen[n]:
			return fmt.Errorf("%w: %s is named twice; give every slot its own name", ErrInvalidSlots, strconv.Quote(n))
		}
		for j, r := range n {
			if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
				//lint:ignore ST1005 the message ends with the punctuation allowed, ":" included
				return fmt.Errorf("%w: slot name %s has %s at byte %d; use letters, digits and punctuation such as - _ . / :",
					ErrInvalidSlots, strconv.Quote(n), describeRune(r), j)
			}
		}
		seen[n] = true
	}
	return nil
}
