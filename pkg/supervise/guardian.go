//go:build linux

package supervise

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// guardianShell runs the guardian. Without it there is no guardian.
const guardianShell = "/bin/sh"

// guardianScript is the whole guardian. It ignores the signals a terminal
// or a broad kill might send, then reads two lines from a pipe whose write
// end only the supervising process holds:
//
//   - the child's process group ID, written right after the child starts.
//     EOF instead means the child never started, or the supervisor died
//     before saying which group: nothing to kill.
//   - any line: stand down, the group is already empty. EOF instead means
//     the supervisor is gone (every copy of the write end is closed, which
//     the kernel does however a process dies), so the group is SIGKILLed.
//
// Every command used is a shell builtin; `kill -s KILL -- -PGID` is the
// form dash and bash both accept.
const guardianScript = `trap "" INT TERM HUP QUIT TSTP USR1 USR2 WINCH; read pgid || exit 0; read _ || kill -s KILL -- "-$pgid"`

// guardian is the running guardian process and our end of its pipe.
type guardian struct {
	pid    int
	w      *os.File // write end; close-on-exec, so no child inherits it
	status syscall.WaitStatus
}

// startGuardian starts the guardian before the child, so that arming it
// once the child runs is a single write. It runs in a process group of its
// own, outside the child's (a group kill must not take it along) and
// outside ours (a kill of our group, such as a terminal's SIGINT, must not
// either), with /dev/null for output, / as directory and an empty
// environment. It returns nil, nil if /bin/sh does not exist.
func startGuardian(devnull *os.File) (*guardian, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("guardian pipe: %w", err)
	}
	pid, err := syscall.ForkExec(guardianShell, []string{guardianShell, "-c", guardianScript}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{r.Fd(), devnull.Fd(), devnull.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	r.Close()
	if err != nil {
		w.Close()
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("start guardian %s: %w", guardianShell, err)
	}
	return &guardian{pid: pid, w: w}, nil
}

// arm tells the guardian which group to kill if we die.
func (g *guardian) arm(pgid int) error {
	if _, err := g.w.Write([]byte(strconv.Itoa(pgid) + "\n")); err != nil {
		return fmt.Errorf("arm guardian %d: %w", g.pid, err)
	}
	return nil
}

// standDown tells an armed guardian to exit without killing. A guardian
// that is already gone (EPIPE) needs no telling.
func (g *guardian) standDown() {
	_, _ = g.w.Write([]byte("\n"))
	g.w.Close()
}

// abandon ends a guardian that was never armed, and reaps it.
func (g *guardian) abandon() {
	g.w.Close()
	g.reap()
}

// reap waits for the guardian, which exits as soon as it reads our line or
// EOF.
func (g *guardian) reap() {
	for {
		_, err := syscall.Wait4(g.pid, &g.status, 0, nil)
		if err != syscall.EINTR {
			return
		}
	}
}
