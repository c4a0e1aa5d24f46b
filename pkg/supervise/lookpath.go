package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
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

// startError classifies an error from execve (or a step before it in the
// forked child) for command, tried as path (relative to dir).
func startError(command, path, dir string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == syscall.EACCES {
			// execve says EACCES for a directory; say what it is.
			p := path
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if fi, serr := os.Stat(p); serr == nil && fi.IsDir() {
				err = syscall.EISDIR
			}
		}
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			return &StartError{Command: command, Path: path, Code: codeNotFound, Err: err}
		case syscall.EACCES, syscall.EPERM, syscall.ENOEXEC, syscall.EISDIR, syscall.ETXTBSY, syscall.ELIBBAD:
			return &StartError{Command: command, Path: path, Code: codeNotExecutable, Err: err}
		}
	}
	return fmt.Errorf("start %s: %w", command, err)
}

// lookPath resolves file like exec.LookPath, but in the PATH of env (the
// child's environment) rather than ours. A name with a slash is returned
// as is: execve itself, run in dir, reports what is wrong with it.
//
// Like os/exec, it ignores relative PATH entries ("", "."), so that a
// command name never silently means a file in the working directory; the
// error says so when one would have matched. Unlike os/exec, a matching
// file that is not executable, when nothing later in PATH is, is reported
// as such (126) rather than as not found, as shells do.
func lookPath(file, dir string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	var notExec, relative string
	for _, d := range filepath.SplitList(getenv(env, "PATH")) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		if !filepath.IsAbs(d) {
			if relative == "" && executable(filepath.Join(dir, p)) == nil {
				relative = p
			}
			continue
		}
		switch err := executable(p); {
		case err == nil:
			return p, nil
		case errors.Is(err, syscall.EACCES) && notExec == "":
			notExec = p
		}
	}
	if notExec != "" {
		return "", &StartError{Command: file, Path: notExec, Code: codeNotExecutable, Err: syscall.EACCES}
	}
	e := &StartError{Command: file, Code: codeNotFound, Err: syscall.ENOENT}
	if relative != "" {
		e.hint = fmt.Sprintf("%s matches through a relative PATH entry, which is not searched; give a path such as ./%s", relative, relative)
	}
	return "", e
}

// executable is nil for a regular file we may execute, EACCES for one we
// may not, and another error for anything else (missing, a directory).
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return syscall.EISDIR
	}
	return unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS)
}

// getenv returns the last value of key in env, the one os/exec would pass
// on when env holds duplicates.
func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
