//go:build linux

package supervise

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// vforkPollInterval is how often a child that has the terminal is checked
// for a stop its own wait report cannot show (see watchVforkStop).
const vforkPollInterval = 100 * time.Millisecond

// watchVforkStop reports on c.stopped a Ctrl-Z that stopped the child's
// job although the direct child itself could not stop: it is waiting in
// vfork(2) while the child it vforked stopped before exec. Shells vfork
// their commands (dash, for one), and a terminal stop that lands between
// the vfork and the exec stops the new process, while its parent waits in
// the kernel until it execs or exits, which a stopped process never does;
// only SIGKILL ends that wait (the parent shows as D). No wait report ever
// comes, and nothing of the job can run. Without this the run would
// neither stop nor tell the user's shell, and Ctrl-Z would seem ignored
// (as it is under a plain shell, which has the same blind spot).
//
// Only the direct child needs watching: a deeper vfork parent is not what
// keeps the job from being reported, because the direct child stops and
// the suspend that follows stops every member.
//
// The signs, read from /proc: the direct child's main thread in state D
// with a child stopped (T) that has forked and not exec'd (the kernel's
// PF_FORKNOEXEC), on two checks in a row. A D parent and a stopped child
// alone could be a shell doing slow I/O while a job of its own sits
// stopped; a stopped child that never exec'd while its parent is blocked
// is what vfork leaves. Each such stop is reported once, and again only
// after the signs were seen gone. It runs only for a child that was given
// the terminal, until that child is reaped: a few small /proc reads every
// 100 ms. Not seen: a vfork from another thread of a multithreaded direct
// child, and kernels without /proc/PID/task/TID/children
// (CONFIG_PROC_CHILDREN); those behave as under a plain shell.
func (c *Child) watchVforkStop() {
	tick := time.NewTicker(vforkPollInterval)
	defer tick.Stop()
	seen, reported := 0, false
	for {
		select {
		case <-c.exited:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		// Under the lock, so that the direct child is not reaped (and its
		// pid freed) while it is looked at.
		blocked := !c.leaderGone && blockedOnStoppedChild(c.pid)
		c.mu.Unlock()
		if !blocked {
			seen, reported = 0, false
			continue
		}
		if seen++; seen >= 2 && !reported {
			reported = true
			select {
			case c.stopped <- struct{}{}:
			default:
			}
		}
	}
}

// pfForkNoExec is the kernel's PF_FORKNOEXEC process flag (stat field 9):
// forked but not yet exec'd.
const pfForkNoExec = 0x40

// blockedOnStoppedChild reports whether pid's main thread is in state D
// with a child stopped (T) that has not exec'd since its fork: a vfork
// parent whose child stopped before exec.
func blockedOnStoppedChild(pid int) bool {
	f, err := statFields(pid)
	if err != nil || f[0] != "D" {
		return false
	}
	p := strconv.Itoa(pid)
	children, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return false
	}
	for _, child := range strings.Fields(string(children)) {
		n, err := strconv.Atoi(child)
		if err != nil {
			continue
		}
		// The parent is checked too: the pid may have been freed and
		// reused since the list was read.
		f, err := statFields(n)
		if err != nil || len(f) < 7 || f[0] != "T" || f[1] != p {
			continue
		}
		if flags, err := strconv.ParseUint(f[6], 10, 64); err == nil && flags&pfForkNoExec != 0 {
			return true
		}
	}
	return false
}
