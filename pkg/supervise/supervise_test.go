//go:build linux

package supervise

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExitStatusPassthrough(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script string
		want   Status
		code   int
	}{
		{"true", Status{Code: 0}, 0},
		{"exit 3", Status{Code: 3}, 3},
		{"exit 255", Status{Code: 255}, 255},
		{"kill -TERM $$", Status{Signal: syscall.SIGTERM}, 143},
		{"kill -KILL $$", Status{Signal: syscall.SIGKILL}, 137},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			t.Parallel()
			c := mustStart(t, shell(tt.script))
			got := finish(t, c)
			if got != tt.want || got.ExitCode() != tt.code {
				t.Errorf("status = %+v (%v), exit code %d; want %+v, exit code %d", got, got, got.ExitCode(), tt.want, tt.code)
			}
			if c.guard == nil {
				t.Fatal("no guardian, want one by default")
			}
			if ws := c.guard.status; !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("guardian wait status %#x, want a clean exit: it should stand down, not kill", ws)
			}
		})
	}
}

func TestEnvDirAndPathFromChildEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/bin/sh", filepath.Join(bin, "mysh")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// "mysh" exists only in the child's PATH, never in ours.
	c := mustStart(t, Spec{
		Path:   "mysh",
		Args:   []string{"-c", `echo "$FOO"; pwd -P; echo "$0"`},
		Env:    []string{"FOO=bar", "PATH=" + bin},
		Dir:    dir,
		Stdout: f,
	})
	if s := finish(t, c); s != (Status{}) {
		t.Fatalf("status %v, want exit 0", s)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bar\n" + realDir + "\nmysh\n"; string(b) != want {
		t.Errorf("child wrote %q, want %q (env, dir, argv[0])", b, want)
	}

	// A path with a slash is relative to Dir and not looked up.
	c = mustStart(t, Spec{Path: "./bin/mysh", Args: []string{"-c", "exit 7"}, Dir: dir, Env: []string{}})
	if s := finish(t, c); s.ExitCode() != 7 {
		t.Errorf("./bin/mysh relative to Dir: status %v, want exit 7", s)
	}
}

func TestStdioPassedAsDescriptors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()

	var passed []string
	for _, f := range []*os.File{inR, outW, errFile} {
		passed = append(passed, fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	}
	spec := shell(`read line; echo "out:$line"; echo "err:$line" >&2`)
	spec.Stdin, spec.Stdout, spec.Stderr = inR, outW, errFile

	// While the child waits for input, its descriptors are our files
	// themselves, and the guardian holds none of them.
	c := mustStart(t, spec)
	pid := c.Pid()
	for fd, want := range passed {
		if !sameFile(t, fmt.Sprintf("/proc/%d/fd/%d", pid, fd), want) {
			t.Errorf("child fd %d is not the file passed in the Spec", fd)
		}
	}
	outW.Close() // the child holds the only write end now: EOF when it is done
	g := c.guard.pid
	gIn := fmt.Sprintf("/proc/%d/fd/0", g)
	if sameFile(t, gIn, fmt.Sprintf("/proc/%d/fd/0", pid)) {
		t.Error("guardian shares the child's stdin")
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		path := fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			// Closed since the listing: the dynamic loader of the just
			// exec'ed shell briefly holds its libraries open.
			continue
		}
		if sameFile(t, gIn, path) {
			t.Errorf("child fd %s is the guardian's pipe: the child could keep the guardian from seeing our death", fd.Name())
		}
	}
	if pgid, _ := syscall.Getpgid(g); pgid != g {
		t.Errorf("guardian %d is in process group %d, want a group of its own", g, pgid)
	}
	if pgid, _ := syscall.Getpgid(pid); pgid != pid {
		t.Errorf("child %d is in process group %d, want a group of its own", pid, pgid)
	}

	if _, err := io.WriteString(inW, "hello\n"); err != nil {
		t.Fatal(err)
	}
	if err := outR.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(outR)
	if err != nil {
		t.Fatalf("reading child stdout: %v", err)
	}
	if s := finish(t, c); s != (Status{}) {
		t.Fatalf("status %v, want exit 0", s)
	}
	errOut, err := os.ReadFile(errFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "out:hello\n" || string(errOut) != "err:hello\n" {
		t.Errorf("stdout %q, stderr %q; want %q, %q", out, errOut, "out:hello\n", "err:hello\n")
	}
}

func TestNilStdioIsDevNull(t *testing.T) {
	t.Parallel()
	c := mustStart(t, Spec{Path: "sleep", Args: []string{"30"}})
	for fd := range 3 {
		if !sameFile(t, fmt.Sprintf("/proc/%d/fd/%d", c.Pid(), fd), os.DevNull) {
			t.Errorf("child fd %d is not /dev/null", fd)
		}
	}
	c.Kill()
	if s := finish(t, c); s.Signal != syscall.SIGKILL {
		t.Errorf("status %v, want killed by KILL", s)
	}
}

func TestLargeOutputDoesNotBlock(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := mustStart(t, Spec{Path: "head", Args: []string{"-c", fmt.Sprint(size), "/dev/zero"}, Stdout: w})
	w.Close()
	drained := make(chan struct{})
	var n int64
	var copyErr error
	go func() {
		defer close(drained)
		n, copyErr = io.Copy(io.Discard, r)
	}()
	await(t, drained, waitTimeout, "8 MiB of child output to be drained")
	if copyErr != nil || n != size {
		t.Fatalf("read %d bytes (%v), want %d", n, copyErr, size)
	}
	if s := finish(t, c); s != (Status{}) {
		t.Errorf("status %v, want exit 0", s)
	}
}

func TestSignalReachesGrandchild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := mustStart(t, shell(`sleep 30 & echo $! > "$1"; wait`, filepath.Join(dir, "gc.pid")))
	gc := readPid(t, filepath.Join(dir, "gc.pid"))
	if pgid, _ := syscall.Getpgid(gc); pgid != c.Pid() {
		t.Fatalf("grandchild %d is in group %d, want the child's group %d", gc, pgid, c.Pid())
	}
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if s := finish(t, c); s.Signal != syscall.SIGTERM {
		t.Errorf("child status %v, want killed by TERM", s)
	}
	// Orphaned by the shell's death, the grandchild was reparented to us
	// and must have been reaped: not even a zombie is left.
	if !gone(gc) {
		t.Errorf("grandchild %d still exists after GroupDone", gc)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// TERM is ignored by the shell and, inherited, by the grandchild.
	c := mustStart(t, shell(`trap "" TERM; sleep 30 & echo $! > "$1"; wait`, filepath.Join(dir, "gc.pid")))
	gc := readPid(t, filepath.Join(dir, "gc.pid")) // also: the trap is set

	const grace = 300 * time.Millisecond
	t0 := time.Now()
	c.Stop(grace)
	await(t, c.GroupDone(), waitTimeout, "group to be empty after Stop")
	elapsed := time.Since(t0)

	if s := c.Status(); s.Signal != syscall.SIGKILL {
		t.Errorf("child status %v, want killed by KILL (it ignores TERM)", s)
	}
	if elapsed < grace {
		t.Errorf("group gone after %v, before the %v grace: KILL came early", elapsed, grace)
	}
	if !gone(gc) {
		t.Errorf("grandchild %d still exists after GroupDone", gc)
	}
	t.Logf("TERM-ignoring group killed %v after Stop(%v)", elapsed, grace)
}

func TestStopAtPastDeadlineKillsNow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := mustStart(t, shell(`trap "" TERM; echo $$ > "$1"; sleep 30`, filepath.Join(dir, "ready")))
	readPid(t, filepath.Join(dir, "ready"))
	c.StopAt(time.Now().Add(-time.Second))
	if s := finish(t, c); s.Signal != syscall.SIGKILL {
		t.Errorf("child status %v, want killed by KILL", s)
	}
}

func TestStopEndsCooperativeGroupWithoutWaitingForGrace(t *testing.T) {
	t.Parallel()
	c := mustStart(t, Spec{Path: "sleep", Args: []string{"30"}})
	c.Stop(time.Hour)
	if s := finish(t, c); s.Signal != syscall.SIGTERM {
		t.Errorf("child status %v, want killed by TERM", s)
	}
	// Once the group is empty its ID may be reused: everything is a no-op.
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("Signal after GroupDone: %v", err)
	}
	c.Kill()
	c.Stop(0)
	c.Close()
	c.Close()
}

func TestStopContinuesStoppedGroup(t *testing.T) {
	t.Parallel()
	c := mustStart(t, Spec{Path: "sleep", Args: []string{"30"}})
	if err := c.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, "child to be stopped", func() bool {
		state, _, _ := procStat(c.Pid())
		return state == 'T'
	})
	c.Stop(time.Hour)
	if s := finish(t, c); s.Signal != syscall.SIGTERM {
		t.Errorf("stopped child: status %v, want killed by TERM (SIGCONT lets it act on TERM)", s)
	}
}

func TestGroupDoneWaitsForLeftoverGrandchild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := mustStart(t, shell(`sleep 30 & echo $! > "$1"`, filepath.Join(dir, "gc.pid")))
	await(t, c.Exited(), waitTimeout, "direct child to exit")
	if s := c.Status(); s != (Status{}) {
		t.Fatalf("status %v, want exit 0", s)
	}
	gc := readPid(t, filepath.Join(dir, "gc.pid"))

	// Several polls' worth of time: the group is not empty, so GroupDone
	// must stay open however often it is checked.
	select {
	case <-c.GroupDone():
		t.Fatalf("GroupDone closed while grandchild %d is alive (%v)", gc, alive(gc))
	case <-time.After(20 * pollInterval):
	}
	if !alive(gc) {
		t.Fatalf("grandchild %d died by itself; the test proves nothing", gc)
	}

	c.Stop(waitTimeout)
	await(t, c.GroupDone(), waitTimeout, "group to be empty after Stop")
	if !gone(gc) {
		t.Errorf("grandchild %d still exists after GroupDone", gc)
	}
	if s := c.Wait(); s != (Status{}) {
		t.Errorf("status after Stop %v, want still the child's own exit 0", s)
	}
}

func TestSubreaperReapsOrphan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The grandchild blocks until we open the FIFO, and outlives its parent.
	c := mustStart(t, shell(`read _ < "$1" & echo $! > "$2"`, fifo, filepath.Join(dir, "gc.pid")))
	await(t, c.Exited(), waitTimeout, "direct child to exit")
	gc := readPid(t, filepath.Join(dir, "gc.pid"))

	// Its parent has been reaped, so it has been reparented already: to us.
	if state, ppid, ok := procStat(gc); !ok || ppid != os.Getpid() || state == 'Z' {
		t.Fatalf("orphaned grandchild %d: state %c, parent %d; want alive with parent %d (us, the subreaper)", gc, state, ppid, os.Getpid())
	}
	select {
	case <-c.GroupDone():
		t.Fatal("GroupDone closed while the orphan is alive")
	default:
	}

	// Let it exit. It becomes our zombie, which only we can reap, and
	// which would keep the group non-empty forever if we did not.
	// Opening for writing waits for the grandchild to open for reading.
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Errorf("open FIFO for the grandchild: %v", err)
			return
		}
		w.Close()
	}()
	await(t, opened, waitTimeout, "the grandchild to open the FIFO")
	await(t, c.GroupDone(), waitTimeout, "group to be empty after the orphan exited")
	if !gone(gc) {
		t.Errorf("orphan %d still exists (a zombie?) after GroupDone", gc)
	}
}

func TestCloseKillsWhatIsLeft(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := mustStart(t, shell(`trap "" TERM; sleep 30 & echo $! > "$1"; wait`, filepath.Join(dir, "gc.pid")))
	gc := readPid(t, filepath.Join(dir, "gc.pid"))
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	await(t, closed, waitTimeout, "Close to kill the group")
	if s := c.Status(); s.Signal != syscall.SIGKILL {
		t.Errorf("status %v, want killed by KILL", s)
	}
	if !gone(gc) {
		t.Errorf("grandchild %d still exists after Close", gc)
	}
}

func TestNoGuardian(t *testing.T) {
	t.Parallel()
	spec := shell("exit 4")
	spec.NoGuardian = true
	c := mustStart(t, spec)
	if c.guard != nil {
		t.Error("guardian started despite NoGuardian")
	}
	if s := finish(t, c); s.ExitCode() != 4 {
		t.Errorf("status %v, want exit 4", s)
	}
}

// TestForkingThreadExitDoesNotKillChild starts the child from a goroutine
// that locks its OS thread and exits without unlocking it, which makes the
// runtime terminate that thread. Had the child been forked on that thread,
// Pdeathsig would have killed it then; the child must instead still be able
// to read a line and answer.
func TestForkingThreadExitDoesNotKillChild(t *testing.T) {
	t.Parallel()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()

	c, tid := startOnDoomedThread(t, Spec{
		Path: "/bin/sh", Args: []string{"-c", "read x; echo alive"},
		Stdin: inR, Stdout: outW,
	})
	outW.Close()
	eventually(t, waitTimeout, fmt.Sprintf("starting thread %d to exit", tid), func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
		return os.IsNotExist(err)
	})
	// The thread is gone: any Pdeathsig it triggered is already pending.
	if _, err := io.WriteString(inW, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := outR.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(outR)
	if err != nil {
		t.Fatalf("reading child stdout: %v", err)
	}
	if s := finish(t, c); string(out) != "alive\n" || s != (Status{}) {
		t.Errorf("child wrote %q and %v; want %q and exit 0: it died with the thread that started it", out, s, "alive\n")
	}
}

// startOnDoomedThread calls Start from a goroutine locked to an OS thread
// other than the main one, which it leaves locked so that the runtime ends
// the thread. It returns the child and the thread's ID.
func startOnDoomedThread(t *testing.T, spec Spec) (*Child, int) {
	t.Helper()
	type result struct {
		c      *Child
		tid    int
		err    error
		isMain bool
	}
	// The runtime never ends the main thread. A goroutine that lands on it
	// keeps it (locked, blocked) until the test ends, so the next one lands
	// elsewhere.
	release := make(chan struct{})
	defer close(release)
	for range 2 {
		res := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			tid := unix.Gettid()
			if tid == os.Getpid() {
				res <- result{isMain: true}
				<-release
				runtime.UnlockOSThread()
				return
			}
			c, err := Start(spec)
			res <- result{c: c, tid: tid, err: err}
		}()
		r := <-res
		if r.isMain {
			continue
		}
		if r.err != nil {
			t.Fatalf("Start: %v", r.err)
		}
		t.Cleanup(r.c.Close)
		return r.c, r.tid
	}
	t.Fatal("could not get a goroutine off the main thread")
	return nil, 0
}

func TestStartFailureLeavesNoGuardian(t *testing.T) {
	// Not parallel: it counts this process's guardians.
	dir := t.TempDir()
	_, err := Start(Spec{Path: filepath.Join(dir, "missing"), Stdout: os.Stdout})
	if err == nil {
		t.Fatal("Start of a missing command succeeded")
	}
	if g := liveGuardians(t); len(g) != 0 {
		t.Errorf("guardians still running after a failed Start: %v", g)
	}
}

func TestBadWorkingDirectory(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nowhere")
	_, err := Start(Spec{Path: "/bin/true", Dir: missing})
	if err == nil {
		t.Fatal("Start with a missing Dir succeeded")
	}
	var se *StartError
	if errors.As(err, &se) || !strings.Contains(err.Error(), "working directory") {
		t.Errorf("error %q (%T): want a plain error about the working directory, not a command error", err, err)
	}
}

func TestChildLeavingItsGroupIsStillAwaited(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("needs python3 to call setpgid:", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	// The child leaves an orphan in its group, joins our own process group
	// and waits for EOF on stdin. The orphan exits once the child has
	// moved, so that our wait for the old group wakes up and finds no
	// child of ours left in it.
	const script = `
import os, sys, time
leader, old = os.getpid(), os.getpgid(0)
if os.fork() == 0:
    if os.fork() == 0:
        while os.getpgid(leader) == old:
            time.sleep(0.005)
        os._exit(0)
    os._exit(0)
os.wait()
os.setpgid(0, os.getpgid(os.getppid()))
print(os.getpgid(0), flush=True)
sys.stdin.read()
`
	c := mustStart(t, Spec{Path: python, Args: []string{"-c", script}, Stdin: inR, Stdout: outW})
	outW.Close()
	t.Cleanup(func() {
		select {
		case <-c.Exited():
		default: // unreaped, so the pid is still this child's
			_ = syscall.Kill(c.Pid(), syscall.SIGKILL)
		}
	})
	if err := outR.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	var pgid int
	if _, err := fmt.Fscan(outR, &pgid); err != nil || pgid != syscall.Getpgrp() {
		t.Fatalf("child reported group %d (%v), want ours, %d", pgid, err, syscall.Getpgrp())
	}

	select {
	case <-c.Exited():
		t.Fatalf("Exited closed (status %v) while the child is alive in another group", c.Status())
	case <-time.After(20 * pollInterval):
	}
	inW.Close()
	if s := finish(t, c); s != (Status{}) {
		t.Errorf("status %v, want exit 0", s)
	}
}

// TestPreparedButNeverStartedLeavesNothing: a command prepared and then
// closed without starting (the claim was never acquired) leaves no guardian
// behind, and a prepared command starts once.
func TestPreparedButNeverStartedLeavesNothing(t *testing.T) {
	p, err := Prepare(Spec{Path: "true"})
	if err != nil {
		t.Fatal(err)
	}
	<-p.guardDone
	if p.guard == nil {
		t.Skip("no /bin/sh here: no guardian to check")
	}
	pid := p.guard.pid
	p.Close()
	p.Close() // twice is fine
	if err := unix.Kill(pid, 0); err != unix.ESRCH {
		t.Fatalf("guardian %d still exists after Close (kill 0: %v); it must be gone and reaped", pid, err)
	}
	if _, err := p.Start(nil); err == nil {
		t.Fatal("a closed prepared command started")
	}
}

// TestStoppedReportsTheDirectChildStopping: the direct child stopping is
// reported on Stopped each time it happens, a grandchild stopping is not,
// and the group goes on to exit normally once continued. Without the stop
// reports a run could not relay a terminal's Ctrl-Z.
func TestStoppedReportsTheDirectChildStopping(t *testing.T) {
	dir := t.TempDir()
	c := mustStart(t, shell(`sleep 30 & echo $! > "$1"; kill -STOP $!; kill -STOP $$; kill -STOP $$; kill $!; exit 4`, filepath.Join(dir, "pid")))
	grandchild := readPid(t, filepath.Join(dir, "pid"))
	for i := 1; i <= 2; i++ {
		select {
		case <-c.Stopped():
		case <-time.After(waitTimeout):
			t.Fatalf("stop %d of the direct child was not reported within %v (state %c)", i, waitTimeout, func() byte { s, _, _ := procStat(c.Pid()); return s }())
		}
		eventually(t, waitTimeout, "the direct child to be stopped", func() bool { s, _, _ := procStat(c.Pid()); return s == 'T' })
		if err := c.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if st := finish(t, c); st.Code != 4 {
		t.Fatalf("status %v after two stops and continues, want exit code 4", st)
	}
	select {
	case <-c.Stopped():
		t.Fatal("Stopped reported a stop that did not happen (the grandchild's, or a continue)")
	default:
	}
	if alive(grandchild) {
		t.Fatal("grandchild still alive")
	}
}
