package etcdtest

import "syscall"

// sysProcAttr makes the kernel kill a member if the test binary dies
// without running its cleanups (a panic in another goroutine, a timeout,
// SIGKILL), so that no etcd is left running on the machine.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
