package cmd

import (
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
