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
// job although the direct child itself could not stop: it is blocked in
// vfork(2) while the child it vforked stopped before exec. Shells vfork
// their commands (dash, for one), and a terminal stop that lands between
// the vfork and the exec stops the new process, while its parent waits in
// vfork uninterruptibly until it execs or exits, which a stopped process
// never does. No wait report ever comes, and nothing of the job can run.
// Without this the run would neither stop nor tell the user's shell, and
// Ctrl-Z would seem ignored (as it is under a plain shell, which has the
// same blind spot).
//
// Only the direct child needs watching: a deeper vfork parent is not what
// keeps the job from being reported, because the direct child stops and
// the suspend that follows stops every member.
//
// The signs, read from /proc: the direct child in state D (vfork's wait)
// with a child of its own stopped (T). Both must hold on two checks in a
// row, so that a moment of disk wait while a grandchild is stopped for
// other reasons is not taken for it; each such stop is reported once, and
// again only after the signs were seen gone. It runs only while a child
// that was given the terminal runs: 10 reads of one small file a second.
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

// blockedOnStoppedChild reports whether pid is in uninterruptible sleep
// (D) with a stopped child (T): a vfork parent whose child stopped before
// exec.
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
		if f, err := statFields(n); err == nil && f[0] == "T" && f[1] == p {
			return true
		}
	}
	return false
}
