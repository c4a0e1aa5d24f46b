package supervise

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Identity names one supervising process for as long as it lives: its pid
// and its start time (clock ticks after boot, /proc/PID/stat field 22). A
// pid alone is reused once the process is gone; the pair is not.
//
// `claimctl run` writes its own Identity next to each hold it passes to the
// command, so that a nested run can tell whether it is still inside the
// command that hold protects (see Identity.Covers).
type Identity struct {
	PID   int
	Start uint64
}

// ErrOtherGroup is wrapped by Identity.Covers when the caller descends from
// the supervisor in its session but through a process group of its own
// (a job-control shell's job): not covered, yet the supervisor may wait for
// it, so it must not wait for the supervisor's claim either.
var ErrOtherGroup = errors.New("left the command's process group")

// String formats the identity as PID:START.
func (id Identity) String() string {
	return strconv.Itoa(id.PID) + ":" + strconv.FormatUint(id.Start, 10)
}

// ParseIdentity reverses Identity.String.
func ParseIdentity(s string) (Identity, error) {
	pid, start, ok := strings.Cut(s, ":")
	if !ok {
		return Identity{}, fmt.Errorf("supervisor %q is not PID:START", s)
	}
	p, err := strconv.Atoi(pid)
	if err != nil || p <= 0 {
		return Identity{}, fmt.Errorf("supervisor pid %q is not a positive number", pid)
	}
	st, err := strconv.ParseUint(start, 10, 64)
	if err != nil {
		return Identity{}, fmt.Errorf("supervisor start time %q is not a number", start)
	}
	id := Identity{PID: p, Start: st}
	if id.String() != s {
		return Identity{}, fmt.Errorf("supervisor %q is not in canonical form", s)
	}
	return id, nil
}
