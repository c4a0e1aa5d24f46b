package supervise

import "os"

// Spec describes the child to start.
type Spec struct {
	// Path is the command. A name without a slash is looked up in the PATH
	// of Env (the child's environment, not ours) as exec.LookPath would;
	// a path with a slash is used as is, relative to Dir. It is also the
	// child's argv[0]. No shell is involved: callers that want one pass
	// "/bin/sh" with Args {"-c", script}.
	Path string
	// Args are the arguments after the command, argv[1:].
	Args []string
	// Env is the child's whole environment; nil means this process's
	// (os.Environ()), as in os/exec.
	Env []string
	// Dir is the child's working directory; "" means ours.
	Dir string
	// Stdin, Stdout and Stderr become the child's descriptors 0, 1 and 2
	// as they are, with no pipe or copying goroutine in between, so a child
	// that writes a lot is never held up by us. nil means /dev/null. As in
	// os/exec, the files are put in blocking mode (os.File.Fd).
	//
	// Unless Terminal gives it the terminal, the child's process group is
	// not the terminal's foreground group: a child reading a terminal on
	// Stdin is stopped by SIGTTIN, and the terminal's Ctrl-C reaches this
	// process only, which forwards it with Signal.
	Stdin, Stdout, Stderr *os.File
	// Terminal, if set, is a terminal to hand to the child: if this
	// process's group is its foreground group when the child starts (see
	// IsForeground), the child's group becomes the foreground group in the
	// child itself, after setpgid and before execve, so that a child that
	// reads the terminal at once is never stopped by SIGTTIN. The terminal
	// then sends Ctrl-C and Ctrl-Z to the child's group, not to this
	// process; Child.Stopped reports the child stopping, and the caller
	// takes the terminal back with SetForeground. Child.Foreground says
	// whether the terminal was handed over.
	Terminal *os.File
	// NoGuardian skips the guardian process. Without it the direct child
	// still dies with this process (Pdeathsig), but its own children
	// survive a SIGKILL of this process. It exists to measure the
	// guardian's cost; leave it false in production. The guardian is also
	// skipped, silently, when /bin/sh does not exist.
	NoGuardian bool
}
