//go:build linux

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
