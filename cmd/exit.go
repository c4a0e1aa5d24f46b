package cmd

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// Exit codes are a public contract for scripts; ExitCodes below documents
// each one and testscripts/exit_*.txtar test each one. Do not renumber them.
// run's 126 and 127 (the command could not be executed / was not found) are
// not here: they are supervise.StartError's Code, as a shell reports them.
const (
	ExitOK          = 0   // success
	ExitError       = 1   // anything not covered below
	ExitUsage       = 64  // bad flag, argument, name, duration, limit
	ExitBadToken    = 65  // the token cannot be parsed
	ExitUnavailable = 69  // etcd unavailable, or the outcome unknown
	ExitBusy        = 75  // busy with -n, or the -w wait timed out (unless -E)
	ExitNotHeld     = 76  // the token no longer holds the claim; run: the claim was lost
	ExitPermission  = 77  // etcd refused: authentication or RBAC
	ExitConfig      = 78  // bad config file, unreadable TLS files
	ExitTimeout     = 124 // run: the command exceeded --max-runtime
)

// ExitCodeDoc is one row of the documented exit-code table.
type ExitCodeDoc struct {
	Code    string // "0", "126, 127", "128+n", "other"
	Meaning string // Markdown: `code` spans are shown as plain text in help
}

// ExitCodes is the one exit-code table: README.md's "Exit codes" section,
// `claimctl help exit-codes` and its man page are all made from it (a test
// compares README.md with it).
var ExitCodes = []ExitCodeDoc{
	{"0", "success"},
	{"1", "anything else (for example: stdout closed before the token could be printed; the claim was released)"},
	{"64", "usage: bad flag, argument, name, duration, limit, slots, endpoint or `--color` given on the command line, or a `--limit` or `--slots` that differs from the claim's holders"},
	{"65", "malformed token (also a malformed `CLAIMCTL_HOLDS`)"},
	{"69", "etcd unavailable, or the outcome unknown (no answer within `--dial-timeout` + `--command-timeout`)"},
	{"75", "busy (`-n`) or the `-w` wait timed out; `-E N` replaces it"},
	{"76", "not held: the token no longer holds the claim; for `run`, the claim was lost while the command ran"},
	{"77", "permission denied by etcd (authentication or RBAC); the message names the prefix"},
	{"78", "configuration error: bad config file, unknown key, wrong type, a bad value from `CLAIMCTL_*`/`ETCDCTL_*` or the file (the message names its source), unreadable TLS or password file"},
	{"124", "`run`: the command exceeded `--max-runtime`"},
	{"126, 127", "`run`: the command could not be executed / was not found (the claim is released at once)"},
	{"128+n", "interrupted by signal n while waiting; `run`: the command was killed by signal n"},
	{"other", "`run`: the command's own exit code"},
}

// ExitCodesMarkdown renders ExitCodes as the Markdown table in README.md.
func ExitCodesMarkdown() string {
	var b strings.Builder
	b.WriteString("| code | meaning |\n|---|---|\n")
	for _, e := range ExitCodes {
		fmt.Fprintf(&b, "| %s | %s |\n", e.Code, e.Meaning)
	}
	return b.String()
}

// exitCodesText renders ExitCodes for a terminal: the codes in a column,
// meanings wrapped to width, without Markdown's backquotes. Every line is
// indented by four spaces, which the man page generator keeps as a
// preformatted block.
func exitCodesText(width int) string {
	const indent = 13
	var b strings.Builder
	for _, e := range ExitCodes {
		line := fmt.Sprintf("    %-*s", indent-4, e.Code)
		col := indent
		for _, word := range strings.Fields(strings.ReplaceAll(e.Meaning, "`", "")) {
			if col > indent && col+1+len(word) > width {
				b.WriteString(line + "\n")
				line, col = strings.Repeat(" ", indent), indent
			}
			if col > indent {
				line += " "
				col++
			}
			line += word
			col += len(word)
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

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
	return fmt.Sprintf("interrupted by signal %s", supervise.SignalName(e.sig))
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
