package runner

import "syscall"

// Windows has no job control; run fails there before any of this runs.
const (
	sigTTOU = syscall.Signal(0x16)
	sigCONT = syscall.Signal(0x12)
	sigSTOP = syscall.Signal(0x13)
)

func ownGroup() int { return 0 }

func groupGone(int) bool { return true }
