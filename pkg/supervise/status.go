package supervise

import (
	"strconv"
	"syscall"
)

// Status is how the direct child ended, kept apart from the exit code that
// claimctl derives from it so that messages can say what happened.
type Status struct {
	// Code is the child's exit code when Signal is 0. It is -1 if the
	// status was lost because something else in this process reaped the
	// child.
	Code int
	// Signal is the signal that killed the child, or 0 if it exited.
	Signal syscall.Signal
}

// ExitCode is the code claimctl exits with, as a shell would: the child's
// own code, or 128+n when it was killed by signal n (-1 if unknown).
func (s Status) ExitCode() int {
	if s.Signal != 0 {
		return 128 + int(s.Signal)
	}
	return s.Code
}

// String describes the status for messages, e.g. "exited with code 3" or
// "killed by signal TERM".
func (s Status) String() string {
	switch {
	case s.Signal != 0:
		return "killed by signal " + SignalName(s.Signal)
	case s.Code < 0:
		return "exit status unknown"
	default:
		return "exited with code " + strconv.Itoa(s.Code)
	}
}
