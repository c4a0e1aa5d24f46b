//go:build linux && (amd64 || arm64)

package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// vforkStopEnv makes the test binary vforkStopMain instead of the tests.
const vforkStopEnv = "E2E_VFORK_STOP"

// init, not TestMain: init runs on the main thread, the one whose state
// /proc/PID/stat shows and whose children /proc/PID/task/PID/children
// lists, which is where claimctl looks.
func init() {
	if os.Getenv(vforkStopEnv) == "1" {
		vforkStopMain()
	}
}

// vforkStopMain is the command of TestInteractiveRunRelaysAStopInVfork: a
// shell's vfork, with the time between the vfork and the exec made long
// enough to type Ctrl-Z in. It writes "PID PPID" to $PIDS, then vforks
// (clone with CLONE_VFORK, without CLONE_VM, so that the child has its own
// copy of memory) a child that prints "ready", sleeps 5s and exits, never
// exec'ing. Meanwhile this process waits in the kernel, unable to stop;
// once the child has exited it prints "continued" and exits 7. The clone
// arguments after the flags are all zero, so their order, which differs
// between architectures, does not matter on the two this file is built
// for.
func vforkStopMain() {
	if err := os.WriteFile(os.Getenv("PIDS"), fmt.Appendf(nil, "%d %d\n", os.Getpid(), os.Getppid()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "vforkstop:", err)
		os.Exit(2)
	}
	ready := []byte("ready\n")
	sleep := syscall.Timespec{Sec: 5}
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, syscall.CLONE_VFORK|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		fmt.Fprintln(os.Stderr, "vforkstop: clone:", errno)
		os.Exit(2)
	}
	if pid == 0 {
		// The child: raw system calls only, as in any child of a fork
		// that has not exec'd. A stop in the sleep, and the continue,
		// restart it for the time left.
		syscall.RawSyscall(syscall.SYS_WRITE, 1, uintptr(unsafe.Pointer(&ready[0])), uintptr(len(ready)))
		syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&sleep)), 0, 0)
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(int(pid), &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
		fmt.Fprintln(os.Stderr, "vforkstop: child:", err, ws)
		os.Exit(2)
	}
	fmt.Println("continued")
	os.Exit(7)
}

// TestInteractiveRunRelaysAStopInVfork: Ctrl-Z that lands while the
// command waits in vfork stops only the vforked child (the command gets
// SIGTSTP too, but cannot act on it in vfork), so no wait report says the
// job stopped. run still relays the stop: the user's shell reports the job
// stopped, and fg continues it to its normal end without the command
// stopping again once vfork returns (the continue discards the pending
// stop signals).
func TestInteractiveRunRelaysAStopInVfork(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	s.expect("$ ", 10*time.Second)
	s.typeIn(vforkStopEnv + `=1 "$CLAIMCTL" run --ttl 10s tty-vfork -- '` + self + `'` + "\n")
	s.expect("ready", 15*time.Second)
	command, claimctl := s.pids()
	s.typeIn("\x1a")
	s.expect("Stopped", 10*time.Second)
	waitFor(t, 10*time.Second, "the command and claimctl to be stopped", func() bool { return stopped(command) && stopped(claimctl) })
	if procState(command) != "D" {
		t.Fatalf("the command (pid %d) is in state %q, not waiting in vfork (D): the test no longer tests what it says", command, procState(command))
	}
	if !strings.Contains(s.screen.String(), "not renewed while suspended") {
		t.Fatalf("claimctl did not say that the claim is not renewed while suspended:\n%s", s.screen)
	}
	s.typeIn("fg\n")
	s.expect("continued", 10*time.Second)
	s.typeIn("echo rc=$?\n")
	s.expect("rc=7", 10*time.Second)
}
