// Package mono reads CLOCK_MONOTONIC, the one clock every process on the
// machine shares: the driver, the tools and the critical-section helper
// stamp events with it so that times from different processes compare.
// (Go's own monotonic readings count from each process's start and do not.)
package mono

import (
	"time"

	"golang.org/x/sys/unix"
)

// Now returns CLOCK_MONOTONIC in nanoseconds.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC exists on every Linux; failing here means the
		// measurements would be meaningless.
		panic("clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}

// Since returns the time elapsed since t, a value from Now.
func Since(t int64) time.Duration { return time.Duration(Now() - t) }
