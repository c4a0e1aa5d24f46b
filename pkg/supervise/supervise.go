//go:build linux

package supervise

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often the group is checked for emptiness once the
// direct child has exited. Before that nothing polls: the supervising
// goroutine sleeps in waitid until a member of the group exits.
const pollInterval = 10 * time.Millisecond

// Child is a started child and its process group. It is the only handle on
// them: nothing else may reap the child. Its methods are safe for
// concurrent use.
type Child struct {
	pid   int       // the direct child; also the process group ID
	guard *guardian // nil without a guardian
	tty   *os.File  // the terminal whose foreground group the child got, or nil

	stopped chan struct{} // receives a value when the direct child stops (or cannot: watchVforkStop)

	exited    chan struct{} // closed when the direct child has been reaped
	groupDone chan struct{} // closed when the group is empty
	finished  chan struct{} // closed when the guardian is reaped too

	mu         sync.Mutex
	status     Status
	leaderGone bool        // the direct child has been reaped
	empty      bool        // the group is empty: never signal its ID again
	killing    bool        // SIGKILL requested: re-sent on every poll
	killAt     time.Time   // when killTimer fires
	killTimer  *time.Timer // pending SIGKILL from StopAt
}

// Start starts the child described by spec and returns once it is running
// (after a successful execve). It is Prepare followed by Prepared.Start.
//
// A command that cannot be found or executed is reported as a *StartError
// (errors.Is ErrNotFound or ErrNotExecutable); other failures are plain
// wrapped errors.
func Start(spec Spec) (*Child, error) {
	p, err := Prepare(spec)
	if err != nil {
		return nil, err
	}
	return p.Start(nil)
}

// Prepared is a command made ready to start: found, with its guardian
// already running. Preparing before the claim is acquired takes the lookup
// and the guardian's fork and exec off the path between acquiring and the
// command running, and reports a command that cannot run before anything is
// acquired. Call Start once, or Close.
type Prepared struct {
	spec    Spec
	path    string
	devnull *os.File

	guardDone chan struct{} // closed once the guardian is started (or failed)
	guard     *guardian
	guardErr  error

	used bool
}

// Prepare looks the command up, checks its working directory, makes this
// process a child subreaper and starts the guardian in the background. It
// fails with a *StartError for a command that cannot be found or executed.
//
// Prepare makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER). That is a process-wide attribute and it stays
// set: every orphaned descendant of this process is reparented to it from
// then on. Orphans that left the child's group (setsid, setpgid) are not
// reaped here and stay zombies until this process exits.
func Prepare(spec Spec) (*Prepared, error) {
	if spec.Path == "" {
		return nil, errors.New("start: empty command")
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	path, err := lookPath(spec.Path, spec.Dir, env)
	if err != nil {
		return nil, err
	}
	if spec.Dir != "" {
		// execve and chdir failures come back from the child as bare
		// errnos; check the directory first so ENOENT means the command.
		if fi, err := os.Stat(spec.Dir); err != nil {
			return nil, fmt.Errorf("start %s: working directory: %w", spec.Path, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("start %s: working directory %s: not a directory", spec.Path, spec.Dir)
		}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("start %s: become child subreaper: %w", spec.Path, err)
	}
	p := &Prepared{spec: spec, path: path, guardDone: make(chan struct{})}
	if spec.Stdin == nil || spec.Stdout == nil || spec.Stderr == nil || !spec.NoGuardian {
		p.devnull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Path, err)
		}
	}
	if spec.NoGuardian {
		close(p.guardDone)
	} else {
		go func() {
			defer close(p.guardDone)
			p.guard, p.guardErr = startGuardian(p.devnull)
		}()
	}
	return p, nil
}

// Start starts the prepared command with environment env (nil means the
// Spec's) and returns once it is running (after a successful execve).
//
// The child's group is protected by the guardian from the moment Start
// returns. The only unprotected window is between the child's execve and
// the single write(2) that tells the already running guardian the child's
// group ID, a few microseconds in which a SIGKILL of this process would
// still kill the child (Pdeathsig) but not a grandchild it had managed to
// fork in that time.
func (p *Prepared) Start(env []string) (*Child, error) {
	if p.used {
		return nil, errors.New("start: a prepared command starts once")
	}
	p.used = true
	defer p.closeDevnull()
	spec := p.spec
	<-p.guardDone
	if p.guardErr != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Path, p.guardErr)
	}
	if env == nil {
		env = spec.Env
	}
	if env == nil {
		env = os.Environ()
	}
	fd := func(f *os.File) uintptr {
		if f == nil {
			return p.devnull.Fd()
		}
		return f.Fd()
	}
	attr := &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   env,
		Files: []uintptr{fd(spec.Stdin), fd(spec.Stdout), fd(spec.Stderr)},
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	c := &Child{
		stopped:   make(chan struct{}, 1),
		guard:     p.guard,
		exited:    make(chan struct{}),
		groupDone: make(chan struct{}),
		finished:  make(chan struct{}),
	}
	if IsForeground(spec.Terminal) {
		// Decided now, not at Prepare: a run can be put in the background
		// while it waits for its claim. The child makes its own group the
		// foreground group between setpgid and execve, with every signal
		// blocked (so the ioctl from the background does not raise
		// SIGTTOU); Ctty is our descriptor for the terminal.
		attr.Sys.Foreground = true
		attr.Sys.Ctty = int(spec.Terminal.Fd())
		c.tty = spec.Terminal
	}
	argv := append([]string{spec.Path}, spec.Args...)
	started := make(chan error, 1)
	go c.supervise(p.path, argv, attr, started)
	err := <-started
	runtime.KeepAlive(spec.Stdin)
	runtime.KeepAlive(spec.Stdout)
	runtime.KeepAlive(spec.Stderr)
	runtime.KeepAlive(spec.Terminal)
	switch {
	case err == nil:
		return c, nil
	case c.pid == 0: // the child never ran
		if c.guard != nil {
			c.guard.abandon()
		}
		return nil, startError(spec.Path, p.path, spec.Dir, err)
	default: // the child ran but could not be protected; it is being killed
		<-c.finished
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
}

// Close releases a prepared command that was not started: its guardian
// exits and is reaped. It does nothing after Start, and may be called any
// number of times.
func (p *Prepared) Close() {
	if p.used {
		return
	}
	p.used = true
	<-p.guardDone
	if p.guard != nil {
		p.guard.abandon()
	}
	p.closeDevnull()
}

func (p *Prepared) closeDevnull() {
	if p.devnull != nil {
		p.devnull.Close()
		p.devnull = nil
	}
}

// supervise forks the child and then reaps it and its group; it is the only
// place that waits for them. It runs on a locked OS thread until the direct
// child is reaped, because Pdeathsig fires when the forking thread exits.
func (c *Child) supervise(path string, argv []string, attr *syscall.ProcAttr, started chan<- error) {
	runtime.LockOSThread()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		runtime.UnlockOSThread()
		started <- err
		return
	}
	c.pid = pid
	var armErr error
	if c.guard != nil {
		if armErr = c.guard.arm(pid); armErr != nil {
			c.Kill() // unprotected: do not let it run
		}
	}
	started <- armErr
	if c.tty != nil {
		go c.watchVforkStop()
	}

	c.waitLeader()
	runtime.UnlockOSThread()

	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !c.checkEmpty() {
		<-tick.C
	}

	// Stand down before announcing: once GroupDone is closed the caller may
	// release the claim and exit, and an armed guardian would then kill a
	// group ID that could by then belong to someone else.
	if c.guard != nil {
		c.guard.standDown()
	}
	close(c.groupDone)
	if c.guard != nil {
		// Let the caller, whom closing groupDone made the next goroutine
		// to run on this P, release the claim first: blocked in wait4, this
		// goroutine would keep it from running until the guardian exits or
		// the runtime takes the P back (80-100 us of the holder's side of a
		// handoff, measured).
		runtime.Gosched()
		c.guard.reap()
	}
	close(c.finished)
}

// waitLeader sleeps until the direct child exits, reaping any orphaned
// group members that exit meanwhile. It peeks with WNOWAIT and reaps under
// the lock, so that a process ID is never freed while Signal might still
// send to it. It also wakes when a child of ours in the group stops or
// continues, so that the direct child's stop is reported (Stopped) while it
// happens; reapLocked consumes those reports.
func (c *Child) waitLeader() {
	idType := unix.P_PGID
	for {
		var info unix.Siginfo
		err := unix.Waitid(idType, c.pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WCONTINUED|unix.WNOWAIT, nil)
		if err == syscall.EINTR {
			continue
		}
		c.mu.Lock()
		c.reapLocked()
		if err != nil && !c.leaderGone {
			if idType == unix.P_PGID {
				// No child of ours is left in the group, yet the direct
				// child has not exited: it moved to another group. Wait
				// for it alone.
				idType = unix.P_PID
			} else {
				// Someone else reaped our child (ECHILD): its status is
				// lost.
				c.setExitedLocked(Status{Code: -1})
			}
		}
		done := c.leaderGone
		c.mu.Unlock()
		if done {
			return
		}
	}
}

// reapLocked reaps every member of the group that is our child and has
// exited, and the direct child even if it left the group, recording its
// status when it comes up. Stop and continue reports of the same processes
// are consumed on the way (else waitLeader's peek would return them
// forever); the direct child stopping is passed on to Stopped.
func (c *Child) reapLocked() {
	const flags = syscall.WNOHANG | syscall.WUNTRACED | syscall.WCONTINUED
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-c.pid, &ws, flags, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			break
		}
		c.recordLocked(pid, ws)
	}
	for !c.leaderGone {
		var ws syscall.WaitStatus
		pid, _ := syscall.Wait4(c.pid, &ws, flags, nil)
		if pid != c.pid {
			break
		}
		c.recordLocked(pid, ws)
	}
}

// recordLocked takes in one wait report of pid.
func (c *Child) recordLocked(pid int, ws syscall.WaitStatus) {
	switch {
	case ws.Stopped():
		if pid == c.pid {
			select {
			case c.stopped <- struct{}{}:
			default:
			}
		}
	case ws.Continued():
	case pid == c.pid:
		c.setExitedLocked(statusOf(ws))
	}
}

func statusOf(ws syscall.WaitStatus) Status {
	if ws.Signaled() {
		return Status{Signal: ws.Signal()}
	}
	return Status{Code: ws.ExitStatus()}
}

func (c *Child) setExitedLocked(s Status) {
	c.status = s
	c.leaderGone = true
	close(c.exited)
}

// checkEmpty reaps what it can and reports whether the group is empty.
// Until it is, a requested SIGKILL is repeated, which also catches a member
// that was mid-fork when the first one was sent.
func (c *Child) checkEmpty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reapLocked()
	// EPERM means members exist that we may not signal: not empty.
	if err := syscall.Kill(-c.pid, 0); err == syscall.ESRCH {
		if strays := c.straysLocked(); len(strays) > 0 {
			// The group is gone but jobs it started outside it are not:
			// not done yet. The group ID is not signalled any more.
			if c.killing {
				for _, pid := range strays {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return false
		}
		c.empty = true
		if c.killTimer != nil {
			c.killTimer.Stop()
		}
		return true
	}
	if c.killing {
		_ = syscall.Kill(-c.pid, syscall.SIGKILL)
		c.signalStraysLocked(syscall.SIGKILL)
	}
	return false
}

// Pid returns the direct child's process ID, which is also its process
// group ID.
func (c *Child) Pid() int {
	return c.pid
}

// Foreground reports whether the child's group was made the foreground
// group of Spec.Terminal when it started.
func (c *Child) Foreground() bool {
	return c.tty != nil
}

// Stopped receives a value when the direct child has stopped (SIGTSTP from
// the terminal's Ctrl-Z, SIGTTIN, SIGSTOP), however often; reports that
// come while an earlier one is not yet received are merged. For a child
// that was given the terminal it also receives one when the direct child
// cannot stop because it is blocked, as in vfork, on a child that stopped
// before exec (see watchVforkStop for what is checked). It is how a
// caller that gave the child the terminal learns that the user suspended
// the job: the terminal signalled the child's group, not this process.
// Nothing is done about a stop here; the other members of the group may
// still be running.
func (c *Child) Stopped() <-chan struct{} {
	return c.stopped
}

// Signal sends sig to the whole process group, so that grandchildren get
// it too (the way a terminal signals a foreground job). A group that has
// already gone is not an error; once GroupDone is closed Signal does
// nothing, as the group ID may be reused.
func (c *Child) Signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.empty {
		return nil
	}
	return c.signalLocked(sig)
}

func (c *Child) signalLocked(sig syscall.Signal) error {
	err := syscall.Kill(-c.pid, sig)
	if err == nil || err == syscall.ESRCH {
		return nil
	}
	return fmt.Errorf("signal process group %d with %s: %w", c.pid, SignalName(sig), err)
}

// Exited is closed when the direct child has exited and been reaped; Status
// is valid from then on. Other members of its group may still be running:
// see GroupDone.
func (c *Child) Exited() <-chan struct{} {
	return c.exited
}

// GroupDone is closed when the direct child has exited and nothing is left
// in its process group, not even a zombie, nor, for a child that got the
// terminal, any live stray (see strays.go). Only then may the claim be
// released. Emptiness is polled every 10ms after the direct child exits.
func (c *Child) GroupDone() <-chan struct{} {
	return c.groupDone
}

// Status is how the direct child ended. It is the zero Status until
// Exited is closed.
func (c *Child) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Stop asks the whole group to end: SIGTERM now, SIGKILL once grace has
// passed if the group is not empty by then. See StopAt.
func (c *Child) Stop(grace time.Duration) {
	c.StopAt(time.Now().Add(grace))
}

// StopAt asks the whole group to end: SIGTERM (followed by SIGCONT, so that
// stopped members can act on it) now, and SIGKILL at killAt if the group is
// not empty by then; a killAt that has passed means SIGKILL now. It is what
// the caller uses when the claim is lost or a time limit hits, with killAt
// taken from its own deadline, and also when the direct child has exited
// but left other processes in its group.
//
// StopAt does not block: wait for GroupDone. Calling it again sends SIGTERM
// again and can only bring the SIGKILL earlier. Delivery errors are not
// reported: the only possible one is EPERM, for members that changed
// credentials, which no signal of ours can reach anyway.
func (c *Child) StopAt(killAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.empty {
		return
	}
	wait := time.Until(killAt)
	if wait <= 0 {
		c.killLocked()
		return
	}
	_ = c.signalLocked(syscall.SIGTERM)
	_ = c.signalLocked(syscall.SIGCONT)
	c.signalStraysLocked(syscall.SIGTERM)
	c.signalStraysLocked(syscall.SIGCONT)
	if c.killTimer == nil || killAt.Before(c.killAt) {
		if c.killTimer != nil {
			c.killTimer.Stop()
		}
		c.killAt = killAt
		c.killTimer = time.AfterFunc(wait, c.Kill)
	}
}

// Kill sends SIGKILL to the whole group now, and again on every poll until
// the group is empty. It does not block: wait for GroupDone.
func (c *Child) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.empty {
		return
	}
	c.killLocked()
}

func (c *Child) killLocked() {
	c.killing = true
	_ = c.signalLocked(syscall.SIGKILL)
	c.signalStraysLocked(syscall.SIGKILL)
}

// SignalJob is Signal for the whole job: the group and, for a child that
// got the terminal, its strays (see strays.go), the jobs of a shell run as
// the command. A caller suspending the command uses it, so that no job of
// the command runs on while nothing supervises it.
func (c *Child) SignalJob(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.empty {
		return nil
	}
	c.signalStraysLocked(sig)
	return c.signalLocked(sig)
}

// Wait blocks until the group is empty and the guardian has stood down and
// been reaped, then returns the direct child's status. It ends nothing by
// itself: to end the group, call Stop or Kill first.
func (c *Child) Wait() Status {
	<-c.finished
	return c.Status()
}

// Close makes sure nothing is left: if the group is not empty yet it is
// SIGKILLed, then Close waits until it is empty and the guardian has been
// reaped. It is meant for defer, as a safety net behind Stop and Wait, and
// may be called any number of times.
func (c *Child) Close() {
	select {
	case <-c.groupDone:
	default:
		c.Kill()
	}
	<-c.finished
}
