//go:build linux

package supervise

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Strays are the processes a command that has the terminal can start
// outside its own process group without leaving the session: the jobs of
// an interactive shell run as the command, which job control puts each in
// a group of its own (and which a group kill would miss). They are found
// among this process's descendants (orphans among them are reparented to
// us, the child subreaper), in the terminal's session but in neither the
// command's group nor ours, and never the guardian. A process that left the
// session (setsid, a daemon) is not a stray: it chose to leave.
//
// Strays are tracked only for a child that got the terminal (Child.tty):
// a command without a terminal has no job control to start them.

// procInfo is what /proc/PID/stat says about one process.
type procInfo struct {
	ppid, pgrp, sid int
	zombie          bool
}

// readProcs reads every process's parent, group and session from /proc.
func readProcs() map[int]procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	procs := make(map[int]procInfo, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(pid)
		if err != nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		sid, _ := strconv.Atoi(f[3])
		procs[pid] = procInfo{ppid: ppid, pgrp: pgrp, sid: sid, zombie: f[0] == "Z"}
	}
	return procs
}

// straysLocked returns the live strays (see above), reaping those that are
// zombies and our children on the way. A zombie stray is dead and can no
// longer act, so it does not count.
func (c *Child) straysLocked() []int {
	if c.tty == nil {
		return nil
	}
	self := os.Getpid()
	sid, _ := unix.Getsid(0)
	own := syscall.Getpgrp()
	guard := 0
	if c.guard != nil {
		guard = c.guard.pid
	}
	procs := readProcs()
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var strays []int
	queue := []int{self}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range children[pid] {
			if k == guard {
				continue
			}
			queue = append(queue, k)
			p := procs[k]
			if p.sid != sid || p.pgrp == c.pid || p.pgrp == own {
				continue
			}
			if p.zombie {
				if p.ppid == self {
					var ws syscall.WaitStatus
					_, _ = syscall.Wait4(k, &ws, syscall.WNOHANG, nil)
				}
				continue
			}
			strays = append(strays, k)
		}
	}
	return strays
}

// signalStraysLocked sends sig to every live stray. A stray's process ID
// could in principle be reused between the scan and the kill; only by a
// process that exited and was reaped within those microseconds.
func (c *Child) signalStraysLocked(sig syscall.Signal) {
	for _, pid := range c.straysLocked() {
		_ = syscall.Kill(pid, sig)
	}
}
