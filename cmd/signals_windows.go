package cmd

import (
	"fmt"
	"os"
	"syscall"
)

// forwarded are the signals run passes on to the child's process group.
// Windows delivers only these two to a Go program (Ctrl-C and Ctrl-Break
// as os.Interrupt; closing the console or logging off as SIGTERM).
var forwarded = []os.Signal{os.Interrupt, syscall.SIGTERM}

// suspendSignals is empty: Windows has no terminal stop signal.
var suspendSignals []os.Signal

// isWinch is false: Windows has no SIGWINCH.
func isWinch(sig syscall.Signal) bool { return false }

// signalName returns "TERM" for SIGTERM and so on. Windows has no names of
// its own; these are the POSIX signals Go defines there.
func signalName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGKILL: "KILL",
		syscall.SIGTERM: "TERM", syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM",
	}
	if n, ok := names[sig]; ok {
		return n
	}
	return fmt.Sprintf("%d", int(sig))
}
