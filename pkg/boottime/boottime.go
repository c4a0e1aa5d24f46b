// Package boottime is a clock for safety deadlines: it keeps counting while the
// machine is suspended.
//
// Go's monotonic clock (CLOCK_MONOTONIC on Linux) stops during suspend, but an
// etcd server on another machine does not: a lease granted before a laptop
// sleeps has expired when it wakes. Deadlines that must fire before a server
// can expire a lease are therefore measured on CLOCK_BOOTTIME where the OS has
// one.
package boottime

import "time"

// Instant is a point on the boot-time clock, as the time elapsed since an
// arbitrary fixed origin. Only differences between Instants are meaningful.
type Instant time.Duration

// Now returns the current boot-time instant.
func Now() Instant { return Instant(now()) }

// Add returns the instant d after i.
func (i Instant) Add(d time.Duration) Instant { return i + Instant(d) }

// Sub returns the duration i-j.
func (i Instant) Sub(j Instant) time.Duration { return time.Duration(i - j) }

// Before reports whether i is earlier than j.
func (i Instant) Before(j Instant) bool { return i < j }

// Until returns the duration from now until i (negative when i has passed).
func Until(i Instant) time.Duration { return i.Sub(Now()) }
