//go:build !windows

package runner

import "syscall"

// Job-control signals and process-group queries, apart so that the package
// still compiles where run is not supported (it fails there before any of
// this runs).
const (
	sigTTOU = syscall.SIGTTOU
	sigCONT = syscall.SIGCONT
	sigSTOP = syscall.SIGSTOP
)

// ownGroup is this process's process group.
func ownGroup() int { return syscall.Getpgrp() }

// groupGone reports whether process group pgid no longer exists.
func groupGone(pgid int) bool { return syscall.Kill(-pgid, 0) == syscall.ESRCH }
