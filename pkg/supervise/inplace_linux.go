//go:build linux

package supervise

import (
	"errors"
	"os"
	"syscall"
)

// Resolve looks spec's command up as Start would (in the PATH of spec.Env)
// and returns the file to execute, or a *StartError for a command that
// cannot be found or executed.
func Resolve(spec Spec) (string, error) {
	if spec.Path == "" {
		return "", errors.New("start: empty command")
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	return lookPath(spec.Path, spec.Dir, env)
}

// ExecInPlace replaces this process with spec's command (execve): same pid,
// same process group, the same descriptors 0-2 (spec's streams are
// ignored), no guardian and no supervision. It is for a command that a
// supervisor further up already covers, such as a nested run joining the
// hold of the run it was started under: that run stops the whole group,
// this process included, when its claim can no longer be proven held, and
// the command's exit status reaches the caller as this process's own. It
// returns only on failure, with a *StartError for a command that cannot be
// found or executed. path is the file to execute (Resolve); spec.Path is
// argv[0], as Start passes it.
func ExecInPlace(spec Spec, path string) error {
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	if spec.Dir != "" {
		if err := os.Chdir(spec.Dir); err != nil {
			return err
		}
	}
	argv := append([]string{spec.Path}, spec.Args...)
	err := syscall.Exec(path, argv, env)
	return startError(spec.Path, path, spec.Dir, err)
}
