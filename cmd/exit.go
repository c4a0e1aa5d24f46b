package cmd

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// Exit codes are a public contract for scripts; README.md documents each one
// and testscripts/exit_*.txtar test each one. Do not renumber them.
const (
	ExitOK          = 0  // success
	ExitError       = 1  // anything not covered below
	ExitUsage       = 64 // bad flag, argument, name, duration, limit
	ExitBadToken    = 65 // the token cannot be parsed
	ExitUnavailable = 69 // etcd unavailable, or the outcome unknown
	ExitBusy        = 75 // busy with -n, or the -w wait timed out (unless -E)
	ExitNotHeld     = 76 // the token no longer holds the claim; run: the claim was lost
	ExitPermission  = 77 // etcd refused: authentication or RBAC
	ExitConfig      = 78 // bad config file, unreadable TLS files
	ExitTimeout     = 124
	ExitCannotExec  = 126
	ExitNotFound    = 127
)

// exitError carries an explicit exit code with an error. quiet suppresses
// the message (used by -E 0, which asks for silence).
type exitError struct {
	code  int
	err   error
	quiet bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withCode attaches an exit code to err.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// usageError reports bad usage (exit 64), printed without the usage text.
func usageError(format string, args ...any) error {
	return withCode(ExitUsage, fmt.Errorf(format, args...))
}

// configError reports a bad configuration (exit 78).
func configError(err error) error { return withCode(ExitConfig, err) }

// signalError reports that claimctl was stopped by a signal while it had
// not yet started anything (exit 128+n, as a shell would report it).
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string {
	return fmt.Sprintf("interrupted by signal %s", signalName(e.sig))
}

// exitCode maps an error to the process exit code. It is the one place that
// knows the table.
func exitCode(err error) int {
	var ee *exitError
	var se signalError
	var st *supervise.StartError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &se):
		return 128 + int(se.sig)
	case errors.As(err, &st):
		return st.Code
	case errors.Is(err, claim.ErrInvalidName), errors.Is(err, claim.ErrInvalidPrefix),
		errors.Is(err, claim.ErrInvalidTTL), errors.Is(err, claim.ErrInvalidLimit),
		errors.Is(err, claim.ErrLimitMismatch), errors.Is(err, claim.ErrInvalidSlots),
		errors.Is(err, claim.ErrSlotsMismatch):
		return ExitUsage
	case errors.Is(err, claim.ErrMalformedToken):
		return ExitBadToken
	case errors.Is(err, claim.ErrPermission):
		return ExitPermission
	case errors.Is(err, claim.ErrBusy), errors.Is(err, claim.ErrWaitTimeout):
		return ExitBusy
	case errors.Is(err, claim.ErrNotHeld):
		return ExitNotHeld
	case errors.Is(err, claim.ErrUnavailable):
		return ExitUnavailable
	}
	return ExitError
}

// isQuiet reports whether the error's message should not be printed.
func isQuiet(err error) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.quiet
}
