//go:build !windows

package cmd

import (
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
