//go:build linux

package supervise

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Self returns the calling process's Identity.
func Self() (Identity, error) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		return Identity{}, err
	}
	return Identity{PID: os.Getpid(), Start: st.start}, nil
}

// Covers reports whether the calling process is inside the command that the
// supervisor id started, so that id stops it when its claim can no longer
// be proven held. It returns nil if so, and otherwise an error saying what
// is different. via are the other supervisors the caller may be nested in
// (runs started inside id's command, each keeping a hold of its own).
//
// The proof is local. Going up the caller's ancestors (ancestry survives
// orphaning, since a supervisor is a child subreaper), each supervisor met
// must be alive (same pid and start time), and the process below it must
// have come through its command's process group: in the group of the
// supervisor's child on the chain, which is not the supervisor's own group
// (the guardian's), in the supervisor's session (setsid leaves it). A
// supervisor stops its command's group, and a nested supervisor in that
// group dies with it, taking its own command's group along (pdeathsig and
// its guardian), so coverage passes up the chain to id. A process that moved
// to another group of its own (setpgid, a job-control shell's job) is not
// covered: no supervisor would stop it.
func (id Identity) Covers(via ...Identity) error {
	known := map[int]Identity{id.PID: id}
	for _, v := range via {
		if _, ok := known[v.PID]; !ok {
			known[v.PID] = v
		}
	}
	cur := os.Getpid()
	for {
		sup, below, err := nearestSupervisor(cur, known)
		if err != nil {
			return err
		}
		if sup.PID == 0 {
			return fmt.Errorf("process %d, which started that run, is not an ancestor of this one (it has exited, or this process left it)", id.PID)
		}
		if err := cameThroughCommand(cur, below, sup); err != nil {
			return err
		}
		if sup.PID == id.PID {
			return nil
		}
		cur = sup.PID
	}
}

// nearestSupervisor walks up from pid to the nearest ancestor that is one of
// known, alive with the same start time, and returns it with the process
// just below it on the chain. It returns a zero Identity when there is none.
func nearestSupervisor(pid int, known map[int]Identity) (Identity, int, error) {
	for {
		st, err := readProcStat(pid)
		if err != nil {
			return Identity{}, 0, nil
		}
		if s, ok := known[st.ppid]; ok {
			parent, err := readProcStat(st.ppid)
			if err == nil && parent.start == s.Start {
				return s, pid, nil
			}
		}
		if st.ppid <= 1 {
			return Identity{}, 0, nil
		}
		pid = st.ppid
	}
}

// cameThroughCommand checks that process cur, below sup on the chain
// through process below (sup's child), is in sup's command group and
// session.
func cameThroughCommand(cur, below int, sup Identity) error {
	sess, err := unix.Getsid(cur)
	if err != nil {
		return fmt.Errorf("process %d has exited", cur)
	}
	if supSess, err := unix.Getsid(sup.PID); err != nil || supSess != sess {
		return fmt.Errorf("this process left the session of the command of the run with pid %d (setsid)", sup.PID)
	}
	group, err := unix.Getpgid(cur)
	if err != nil {
		return fmt.Errorf("process %d has exited", cur)
	}
	supGroup, err := unix.Getpgid(sup.PID)
	if err != nil {
		return fmt.Errorf("process %d, which started that run, has exited", sup.PID)
	}
	cmdGroup, err := unix.Getpgid(below)
	if err != nil || cmdGroup == supGroup || cmdGroup != group {
		return fmt.Errorf("this process %w of the run with pid %d (setpgid, or a job-control shell's job)", ErrOtherGroup, sup.PID)
	}
	return nil
}

type ancestorStat struct {
	ppid  int
	start uint64
}

// readProcStat reads a process's parent and start time.
func readProcStat(pid int) (ancestorStat, error) {
	f, err := statFields(pid)
	if err != nil {
		return ancestorStat{}, err
	}
	if len(f) < 20 {
		return ancestorStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return ancestorStat{}, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return ancestorStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return ancestorStat{ppid: ppid, start: start}, nil
}
