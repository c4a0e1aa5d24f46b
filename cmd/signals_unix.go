//go:build !windows

package cmd

import (
	"fmt"
	"os"
	"syscall"
)

// forwarded are the signals run passes on to the child's process group.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// suspendSignals are the stop signals a terminal sends (Ctrl-Z), which run
// refuses: see refuseSuspend.
var suspendSignals = []os.Signal{syscall.SIGTSTP}

// isWinch reports whether sig is SIGWINCH, which a window resize sends and
// which must not end a wait.
func isWinch(sig syscall.Signal) bool { return sig == syscall.SIGWINCH }

// signalName returns "TERM" for SIGTERM and so on.
func signalName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGKILL: "KILL",
		syscall.SIGTERM: "TERM", syscall.SIGUSR1: "USR1", syscall.SIGUSR2: "USR2", syscall.SIGPIPE: "PIPE",
		syscall.SIGALRM: "ALRM", syscall.SIGWINCH: "WINCH",
	}
	if n, ok := names[sig]; ok {
		return n
	}
	return fmt.Sprintf("%d", int(sig))
}
