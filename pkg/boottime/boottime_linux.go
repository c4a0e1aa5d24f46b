//go:build linux

package boottime

import (
	"time"

	"golang.org/x/sys/unix"
)

func now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists since Linux 2.6.39; fall back rather than fail.
		return time.Duration(monotonicFallback())
	}
	return time.Duration(ts.Nano())
}
