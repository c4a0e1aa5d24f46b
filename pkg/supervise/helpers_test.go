//go:build linux

package supervise

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds every wait for something that should happen promptly;
// it only matters when a test is failing, so it is generous for -race on a
// loaded machine.
const waitTimeout = 10 * time.Second

// await fails the test unless ch is closed within d.
func await(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// eventually polls cond every 5ms and fails the test unless it holds within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shell is a Spec running script with /bin/sh; extra arguments become $1...
func shell(script string, args ...string) Spec {
	return Spec{Path: "/bin/sh", Args: append([]string{"-c", script, "sh"}, args...)}
}

// mustStart starts spec and registers a bounded Close as cleanup, so that a
// failing test leaves no process behind.
func mustStart(t *testing.T, spec Spec) *Child {
	t.Helper()
	c, err := Start(spec)
	if err != nil {
		t.Fatalf("Start(%s %q): %v", spec.Path, spec.Args, err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			c.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("cleanup: Close of child %d did not return within %v", c.Pid(), waitTimeout)
		}
	})
	return c
}

// finish waits (bounded) until c is completely done and returns its status.
func finish(t *testing.T, c *Child) Status {
	t.Helper()
	await(t, c.GroupDone(), waitTimeout, fmt.Sprintf("group of child %d to be empty", c.Pid()))
	await(t, c.finished, waitTimeout, fmt.Sprintf("guardian of child %d to be reaped", c.Pid()))
	return c.Wait()
}

// procStat returns the state letter and parent of pid from /proc, ok false
// if there is no such process.
func procStat(pid int) (state byte, ppid int, ok bool) {
	state, ppid, _, ok = procStatGroup(pid)
	return state, ppid, ok
}

// procStatGroup is procStat with the process group.
func procStatGroup(pid int) (state byte, ppid, pgid int, ok bool) {
	f, err := statFields(pid)
	if err != nil {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	return f[0][0], ppid, pgid, true
}

// alive reports whether pid is a process that has not exited: a zombie is
// dead for this purpose (it can no longer do anything).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return false
	}
	state, _, ok := procStat(pid)
	return ok && state != 'Z'
}

// gone reports whether pid no longer exists at all: exited and reaped.
func gone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// readPid waits (bounded) for a shell's `echo $! > file` to complete.
func readPid(t *testing.T, file string) int {
	t.Helper()
	var pid int
	eventually(t, waitTimeout, "pid file "+filepath.Base(file), func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// procs lists the processes for which keep is true.
func procs(t *testing.T, keep func(pid int, state byte, ppid, pgid int) bool) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, pgid, ok := procStatGroup(pid); ok && keep(pid, state, ppid, pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// liveGuardians lists the live guardian processes whose parent is this
// process.
func liveGuardians(t *testing.T) []int {
	t.Helper()
	return procs(t, func(pid int, state byte, ppid, _ int) bool {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return state != 'Z' && ppid == os.Getpid() && bytes.Contains(cmdline, []byte("read pgid"))
	})
}

// ourLeftovers lists the members of process group pgid that are alive, or
// are zombies this process has to reap.
func ourLeftovers(t *testing.T, pgid int) []int {
	t.Helper()
	return procs(t, func(_ int, state byte, ppid, g int) bool {
		return g == pgid && (state != 'Z' || ppid == os.Getpid())
	})
}

// sameFile reports whether two paths (such as /proc/PID/fd/N) name the same
// open object: the same pipe, the same file.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}
