//go:build !linux

package supervise

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// errUnsupported is what Start returns off Linux. It matches
// errors.ErrUnsupported, so callers can tell it from a failed start.
var errUnsupported error = unsupportedError{}

type unsupportedError struct{}

func (unsupportedError) Error() string {
	return "claimctl run is supported on Linux only (PR_SET_PDEATHSIG and child subreapers are Linux features)"
}

func (unsupportedError) Is(target error) bool { return target == errors.ErrUnsupported }

// Child is a started child and its process group. Off Linux, Start never
// returns one; the type and its methods exist so that callers compile, and
// they behave as for a child whose status was lost and whose group is gone.
type Child struct{}

// Start always fails off Linux: nothing here could keep the child's process
// group from outliving this process, so the child is not started. The error
// matches errors.ErrUnsupported.
func Start(spec Spec) (*Child, error) {
	if spec.Path == "" {
		return nil, errors.New("start: empty command")
	}
	return nil, errUnsupported
}

// Prepared is a command made ready to start. Off Linux, Prepare never
// returns one.
type Prepared struct{}

// Prepare always fails off Linux, before anything else is done: see Start.
func Prepare(spec Spec) (*Prepared, error) {
	_, err := Start(spec)
	return nil, err
}

// Start fails: there is nothing to start.
func (p *Prepared) Start(env []string) (*Child, error) { return nil, errUnsupported }

// Close does nothing.
func (p *Prepared) Close() {}

// Pid is 0: there is no child.
func (c *Child) Pid() int { return 0 }

// Foreground is false: no child was given a terminal.
func (c *Child) Foreground() bool { return false }

// Stopped never receives.
func (c *Child) Stopped() <-chan struct{} { return nil }

// ForegroundGroup fails off Linux.
func ForegroundGroup(tty *os.File) (int, error) { return 0, errUnsupported }

// IsForeground is false off Linux: nothing is ever handed a terminal.
func IsForeground(tty *os.File) bool { return false }

// SetForeground fails off Linux.
func SetForeground(tty *os.File, pgid int) error { return errUnsupported }

// SuspendSelf does nothing off Linux.
func SuspendSelf() {}

// SignalJob fails: there is no group to signal.
func (c *Child) SignalJob(sig syscall.Signal) error { return errUnsupported }

// Signal fails: there is no group to signal.
func (c *Child) Signal(sig syscall.Signal) error { return errUnsupported }

// Exited is already closed.
func (c *Child) Exited() <-chan struct{} { return closed() }

// GroupDone is already closed.
func (c *Child) GroupDone() <-chan struct{} { return closed() }

// Status is unknown (Code -1).
func (c *Child) Status() Status { return Status{Code: -1} }

// Stop does nothing.
func (c *Child) Stop(grace time.Duration) {}

// StopAt does nothing.
func (c *Child) StopAt(killAt time.Time) {}

// Kill does nothing.
func (c *Child) Kill() {}

// Wait returns at once with an unknown status (Code -1).
func (c *Child) Wait() Status { return c.Status() }

// Close does nothing.
func (c *Child) Close() {}

func closed() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
