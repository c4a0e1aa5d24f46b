package etcdtest

import "syscall"

// sysProcAttr has nothing to set: macOS cannot kill a child when its parent
// dies, so a test binary that dies without its cleanups leaves members
// running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
