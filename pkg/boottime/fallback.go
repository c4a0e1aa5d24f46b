package boottime

import "time"

// origin anchors the fallback clock; it is set once at start-up and never
// changed.
var origin = time.Now()

// monotonicFallback uses Go's monotonic clock, which may stop during suspend.
// It is the best available where the OS has no boot-time clock.
func monotonicFallback() int64 { return int64(time.Since(origin)) }
