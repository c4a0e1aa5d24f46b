// Package procs watches the processes a benchmark starts: their peak memory,
// their children, and the instant they exit, on CLOCK_MONOTONIC.
package procs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/claimctl/claimctl/bench/internal/mono"
)

// Memory is a process's resident set size now and at its peak, in KiB, read
// from /proc/PID/status (VmRSS and VmHWM).
type Memory struct {
	RSS, HWM int64
}

// ReadMemory reads pid's VmRSS and VmHWM.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "VmHWM":
			m.HWM = n
		}
	}
	if m.HWM == 0 {
		return m, fmt.Errorf("pid %d: no VmHWM in /proc status (a zombie?)", pid)
	}
	return m, sc.Err()
}

// Children returns pid's direct children (from every thread's
// /proc/PID/task/TID/children).
func Children(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Exe returns the path of pid's executable, "" if it cannot be read.
func Exe(pid int) string {
	p, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return p
}

// KillIfExe SIGKILLs pid only if it still runs executable exe: the helper
// processes the benchmark leaves behind (an orphaned critical section) are
// ended by their own pid, never by name, and never a recycled pid.
func KillIfExe(pid int, exe string) bool {
	if pid <= 0 || Exe(pid) != exe {
		return false
	}
	return syscall.Kill(pid, syscall.SIGKILL) == nil
}

// ExitWatch records when a process that is not necessarily our child exits,
// through a pidfd (which becomes readable when the process terminates,
// whoever reaps it).
type ExitWatch struct {
	fd   int
	done chan struct{}
	once sync.Once
	stop chan struct{}

	mu sync.Mutex
	at int64 // CLOCK_MONOTONIC of the exit, 0 while running
}

// WatchExit starts watching pid. A pid that has already gone is reported as
// exited at the time of the call.
func WatchExit(pid int) (*ExitWatch, error) {
	w := &ExitWatch{done: make(chan struct{}), stop: make(chan struct{}), fd: -1}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		w.at = mono.Now()
		close(w.done)
		return w, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	w.fd = fd
	go w.poll()
	return w, nil
}

func (w *ExitWatch) poll() {
	defer unix.Close(w.fd)
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n > 0 {
			w.mu.Lock()
			w.at = mono.Now()
			w.mu.Unlock()
			close(w.done)
			return
		}
	}
}

// Done is closed when the process has exited.
func (w *ExitWatch) Done() <-chan struct{} { return w.done }

// At returns the CLOCK_MONOTONIC instant of the exit and whether it exited.
func (w *ExitWatch) At() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at, w.at != 0
}

// Close stops watching.
func (w *ExitWatch) Close() { w.once.Do(func() { close(w.stop) }) }

// WaitFor polls cond every 5ms until it returns true or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CPUTime returns the user+system CPU time pid has used so far, from
// /proc/PID/stat (clock-tick resolution, 10ms on most kernels).
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after its
	// closing parenthesis start at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: malformed /proc stat", pid)
	}
	const ticksPerSecond = 100 // USER_HZ, fixed at 100 on Linux for /proc
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}
