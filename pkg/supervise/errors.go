package supervise

import (
	"errors"
	"fmt"
	"strings"
)

// Exit codes a shell uses for a command it cannot run; claimctl keeps the
// convention so scripts can tell "the command failed" from "it never ran".
const (
	codeNotExecutable = 126
	codeNotFound      = 127
)

// ErrNotFound matches (errors.Is) a StartError for a command that does not
// exist; callers exit with 127 for it, as a shell would.
var ErrNotFound = errors.New("command not found")

// ErrNotExecutable matches (errors.Is) a StartError for a command that
// exists but cannot be executed (no permission, a directory, not a
// recognised executable format); callers exit with 126 for it.
var ErrNotExecutable = errors.New("command not executable")

// StartError reports a command that could not be run, with the exit code a
// shell would use, so that the caller can map it in its exit-code table.
type StartError struct {
	// Command is the command as given (Spec.Path).
	Command string
	// Path is the file that was tried: Command itself if it contains a
	// slash, else what the PATH search found; "" if it found nothing.
	Path string
	// Code is 127 (not found) or 126 (found but not executable).
	Code int
	// Err is the cause, usually a syscall.Errno such as ENOENT or EACCES.
	Err error

	hint string // extra advice for the message
}

// Error names the command and says why it could not be run.
func (e *StartError) Error() string {
	var b strings.Builder
	b.WriteString("start ")
	b.WriteString(e.Command)
	switch {
	case e.Path == "":
		b.WriteString(": command not found in PATH")
	case e.Code == codeNotFound:
		fmt.Fprintf(&b, ": command not found: %v", e.Err)
	case e.Path == e.Command:
		fmt.Fprintf(&b, ": cannot execute: %v", e.Err)
	default:
		fmt.Fprintf(&b, ": cannot execute %s: %v", e.Path, e.Err)
	}
	if e.hint != "" {
		b.WriteString(" (")
		b.WriteString(e.hint)
		b.WriteString(")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) and errors.Is(err, ErrNotExecutable)
// work without the caller knowing the codes.
func (e *StartError) Is(target error) bool {
	return (target == ErrNotFound && e.Code == codeNotFound) ||
		(target == ErrNotExecutable && e.Code == codeNotExecutable)
}

// Unwrap returns the cause, so errors.Is(err, syscall.EACCES) works too.
func (e *StartError) Unwrap() error {
	return e.Err
}
