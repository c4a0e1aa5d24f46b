//go:build linux

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// ptySession is a program running as the leader of a new session whose
// controlling terminal is a fresh pseudo-terminal, as a terminal emulator
// starts a shell: the tests type into it and read its screen.
type ptySession struct {
	t      *testing.T
	ptm    *os.File
	cmd    *exec.Cmd
	screen *syncBuffer
	seen   int // how much of the screen earlier expects consumed
	done   chan struct{}
}

// startPTYSession starts argv in a new session on a new pty. env is added
// to an environment that configures claimctl for endpoints and names it
// $CLAIMCTL.
func startPTYSession(t *testing.T, endpoints []string, argv ...string) *ptySession {
	t.Helper()
	ptm, tty := openPTY(t)
	s := &ptySession{t: t, ptm: ptm, screen: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = append(os.Environ(),
		"CLAIMCTL="+claimctlBin,
		"CLAIMCTL_ENDPOINTS="+strings.Join(endpoints, ","),
		"CLAIMCTL_DIAL_TIMEOUT=1s", "CLAIMCTL_COMMAND_TIMEOUT=1s",
		"USER=e2e", "XDG_CONFIG_HOME="+t.TempDir(), "TERM=dumb", "PS1=$ ", "NO_COLOR=1",
		"PIDS="+filepath.Join(t.TempDir(), "pids"))
	s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = tty, tty, tty
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %v on a pty: %v", argv, err)
	}
	tty.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			s.screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		// The session's processes die with the terminal (SIGHUP); make sure.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// env returns the value of a variable set in the session's environment.
func (s *ptySession) env(name string) string {
	for _, e := range s.cmd.Env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}

// typeIn writes text to the terminal as if typed.
func (s *ptySession) typeIn(text string) {
	s.t.Helper()
	if _, err := s.ptm.WriteString(text); err != nil {
		s.t.Fatalf("typing %q: %v", text, err)
	}
}

// expect waits until want appears on the screen after what earlier expects
// consumed, failing with the whole screen if it does not.
func (s *ptySession) expect(want string, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := s.screen.String()
		if i := strings.Index(scr[s.seen:], want); i >= 0 {
			s.seen += i + len(want)
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal did not show %q within %v; the session's processes:\n%s\nscreen:\n%s", want, timeout, s.processes(), scr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processes describes every process of the session (from /proc: pid,
// parent, group, state, the terminal's foreground group, what it waits in)
// so that a test stuck waiting for the screen says who was doing what.
func (s *ptySession) processes() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%7s %7s %7s %5s %7s %-16s %s\n", "PID", "PPID", "PGRP", "STATE", "TTY-FG", "WCHAN", "COMMAND")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		comm := string(stat[bytes.IndexByte(stat, '(')+1 : i])
		// After "(comm) ": state ppid pgrp session tty_nr tpgid ...
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 6 || f[3] != strconv.Itoa(s.cmd.Process.Pid) {
			continue
		}
		wchan, _ := os.ReadFile("/proc/" + e.Name() + "/wchan")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		fmt.Fprintf(&b, "%7d %7s %7s %5s %7s %-16s %s [%s]\n", pid, f[1], f[2], f[0], f[5], wchan,
			strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "), comm)
	}
	return b.String()
}

// pids reads the "PID PPID" the command under run wrote to $PIDS: the
// command and claimctl.
func (s *ptySession) pids() (command, claimctl int) {
	s.t.Helper()
	file := s.env("PIDS")
	var f []string
	waitFor(s.t, 15*time.Second, "the command to write its pid", func() bool {
		b, err := os.ReadFile(file)
		f = strings.Fields(string(b))
		return err == nil && strings.HasSuffix(string(b), "\n") && len(f) == 2
	})
	return atoi(s.t, f[0]), atoi(s.t, f[1])
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// stopped reports whether pid is held by job control: stopped (T), or
// waiting in vfork (D) for a child of its own that is stopped. The second is
// where a shell that vforks its commands (dash) is left when Ctrl-Z lands
// between a vfork and the exec: the parent cannot stop, and cannot run
// either until its child is continued.
func stopped(pid int) bool {
	switch procState(pid) {
	case "T", "t":
		return true
	case "D":
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, c := range strings.Fields(string(children)) {
			if n, err := strconv.Atoi(c); err == nil && procState(n) == "T" {
				return true
			}
		}
	}
	return false
}

// TestInteractiveRunReadsTheTerminal: run in the foreground of a terminal
// gives the terminal to the command, which reads a line from it (no
// SIGTTIN), and exits with its code; afterwards the terminal is the
// parent's again: the parent (a shell without job control, which does not
// take the terminal back itself) can read from it.
func TestInteractiveRunReadsTheTerminal(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "/bin/sh", "-c",
		`"$CLAIMCTL" run tty-read -- sh -c 'echo rea""dy; read line; echo "got:$line"; exit 3'; echo "rc=$?"; read after; echo "after:$after"`)
	s.expect("ready", 15*time.Second)
	s.typeIn("hello\n")
	s.expect("got:hello", 10*time.Second)
	s.expect("rc=3", 10*time.Second)
	s.typeIn("again\n")
	s.expect("after:again", 10*time.Second)
	if strings.Contains(s.screen.String(), "claimctl:") {
		t.Fatalf("claimctl said something although nothing went wrong:\n%s", s.screen)
	}
}

// TestInteractiveRunSuspendAndFg: Ctrl-Z on the terminal stops the command
// and claimctl, and the interactive shell above reports the job stopped;
// fg continues both, the command reads the terminal again and finishes
// normally, and run exits with its code.
func TestInteractiveRunSuspendAndFg(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	s.expect("$ ", 10*time.Second)
	s.typeIn(`"$CLAIMCTL" run --ttl 10s tty-z -- sh -c 'echo $$ $PPID > "$PIDS"; echo rea""dy; read line; echo "got:$line"'` + "\n")
	s.expect("ready", 15*time.Second)
	command, claimctl := s.pids()
	s.typeIn("\x1a")
	s.expect("Stopped", 10*time.Second)
	waitFor(t, 10*time.Second, "the command and claimctl to be stopped", func() bool { return stopped(command) && stopped(claimctl) })
	if !strings.Contains(s.screen.String(), "not renewed while suspended") {
		t.Fatalf("claimctl did not say that the claim is not renewed while suspended:\n%s", s.screen)
	}
	s.typeIn("fg\n")
	waitFor(t, 10*time.Second, "the command and claimctl to run again", func() bool { return !stopped(command) && !stopped(claimctl) })
	s.typeIn("hello\n")
	s.expect("got:hello", 10*time.Second)
	s.typeIn("echo rc=$?\n")
	s.expect("rc=0", 10*time.Second)
	t.Logf("screen:\n%s", s.screen)
}

// TestInteractiveRunSuspendedPastTheTTLIsKilledOnFg: a run suspended for
// longer than the claim's TTL cannot prove it still holds the claim when
// continued: the command (still stopped) is killed without running again,
// and run exits 76 saying the claim ran out while suspended.
func TestInteractiveRunSuspendedPastTheTTLIsKilledOnFg(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	beat := filepath.Join(t.TempDir(), "beat")
	s.expect("$ ", 10*time.Second)
	s.typeIn(`"$CLAIMCTL" run --ttl 2s tty-long -- sh -c 'echo $$ $PPID > "$PIDS"; echo rea""dy; while :; do echo x >> ` + beat + `; sleep 0.05; done'` + "\n")
	s.expect("ready", 15*time.Second)
	command, claimctl := s.pids()
	s.typeIn("\x1a")
	s.expect("Stopped", 10*time.Second)
	waitFor(t, 10*time.Second, "the command and claimctl to be stopped", func() bool { return stopped(command) && stopped(claimctl) })
	before := fileSize(beat)
	time.Sleep(3 * time.Second) // past the granted TTL (2s)
	s.typeIn("fg\n")
	s.typeIn("echo rc=$?\n")
	s.expect("rc=76", 15*time.Second)
	if !strings.Contains(s.screen.String(), "ran out while run was suspended") {
		t.Fatalf("claimctl did not say that the claim ran out while suspended:\n%s", s.screen)
	}
	if alive(command) {
		t.Fatalf("the command (pid %d) is alive after the claim ran out", command)
	}
	if after := fileSize(beat); after != before {
		t.Fatalf("the command ran again after the claim ran out: its heartbeat file grew from %d to %d bytes", before, after)
	}
	t.Logf("screen:\n%s", s.screen)
}

// TestInteractiveRunClaimLostRestoresTheTerminal: a claim removed from
// outside (release --force) while the command has the terminal stops the
// command's group, run exits 76, and the terminal is the parent's again.
func TestInteractiveRunClaimLostRestoresTheTerminal(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "/bin/sh", "-c",
		`"$CLAIMCTL" run --grace 500ms tty-lost -- sh -c 'echo $$ $PPID > "$PIDS"; echo rea""dy; read line; echo "got:$line"'; echo "rc=$?"; read after; echo "after:$after"`)
	s.expect("ready", 15*time.Second)
	command, _ := s.pids()
	force := startClaimctl(t, endpoints, nil, "release", "--force", "tty-lost")
	if code := force.wait(10 * time.Second); code != 0 {
		t.Fatalf("release --force exited %d: %s", code, force.stderr)
	}
	s.expect("rc=76", 15*time.Second)
	if alive(command) {
		t.Fatalf("the command (pid %d) survived the lost claim", command)
	}
	s.typeIn("back\n")
	s.expect("after:back", 10*time.Second)
}

// fileSize is the size of file, 0 if it does not exist.
func fileSize(file string) int64 {
	fi, err := os.Stat(file)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestInteractiveRunForcedWhileSuspendedIsKilledOnFg: a claim released
// with --force while run is suspended (its lease still alive, so the
// deadline alone proves nothing wrong) is found gone when run is continued,
// before the command runs again: the command is killed, exit 76.
func TestInteractiveRunForcedWhileSuspendedIsKilledOnFg(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	beat := filepath.Join(t.TempDir(), "beat")
	s.expect("$ ", 10*time.Second)
	s.typeIn(`"$CLAIMCTL" run --ttl 30s tty-forced -- sh -c 'echo $$ $PPID > "$PIDS"; echo rea""dy; while :; do echo x >> ` + beat + `; sleep 0.05; done'` + "\n")
	s.expect("ready", 15*time.Second)
	command, claimctl := s.pids()
	s.typeIn("\x1a")
	s.expect("Stopped", 10*time.Second)
	waitFor(t, 10*time.Second, "the command and claimctl to be stopped", func() bool { return stopped(command) && stopped(claimctl) })
	before := fileSize(beat)
	force := startClaimctl(t, endpoints, nil, "release", "--force", "tty-forced")
	if code := force.wait(10 * time.Second); code != 0 {
		t.Fatalf("release --force exited %d: %s", code, force.stderr)
	}
	s.typeIn("fg\n")
	s.typeIn("echo rc=$?\n")
	s.expect("rc=76", 15*time.Second)
	if alive(command) {
		t.Fatalf("the command (pid %d) is alive after its claim was forced away", command)
	}
	if after := fileSize(beat); after != before {
		t.Fatalf("the command ran again after its claim was forced away: its heartbeat file grew from %d to %d bytes", before, after)
	}
	if !strings.Contains(s.screen.String(), "found on continuing after a suspend") {
		t.Fatalf("claimctl did not say the claim was found gone on continuing:\n%s", s.screen)
	}
}

// TestInteractiveRunStopsTheShellsJobs: an interactive shell run as the
// command puts each of its jobs in a process group of its own, which a
// group kill misses. run stops them too: when the claim is lost, a
// background job of the shell is dead before run exits (and so before the
// claim is released), and a job the shell leaves behind when it exits is
// stopped before the claim is released.
func TestInteractiveRunStopsTheShellsJobs(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	t.Run("claim lost", func(t *testing.T) {
		s := startPTYSession(t, endpoints, "/bin/sh", "-c",
			`"$CLAIMCTL" run --grace 500ms tty-jobs -- bash --norc --noprofile --noediting -i; echo "rc=$?"; read after; echo "after:$after"`)
		s.expect("$ ", 15*time.Second)
		s.typeIn(`sleep 1000 & echo $! $$ > "$PIDS"` + "\n")
		job, shell := s.pids()
		t.Cleanup(func() { _ = syscall.Kill(job, syscall.SIGKILL) })
		force := startClaimctl(t, endpoints, nil, "release", "--force", "tty-jobs")
		if code := force.wait(10 * time.Second); code != 0 {
			t.Fatalf("release --force exited %d: %s", code, force.stderr)
		}
		s.expect("rc=76", 15*time.Second)
		if alive(shell) {
			t.Fatalf("the interactive shell (pid %d) survived the lost claim", shell)
		}
		if alive(job) {
			t.Fatalf("the shell's background job (pid %d, its own process group) survived the lost claim and run exited", job)
		}
		s.typeIn("back\n")
		s.expect("after:back", 10*time.Second)
	})
	t.Run("left behind", func(t *testing.T) {
		s := startPTYSession(t, endpoints, "/bin/sh", "-c",
			`"$CLAIMCTL" run --grace 500ms tty-jobs2 -- bash --norc --noprofile --noediting -i; echo "rc=$?"`)
		s.expect("$ ", 15*time.Second)
		s.typeIn(`sleep 1000 & echo $! $$ > "$PIDS"; exit 0` + "\n")
		job, _ := s.pids()
		t.Cleanup(func() { _ = syscall.Kill(job, syscall.SIGKILL) })
		s.expect("rc=0", 15*time.Second)
		if alive(job) {
			t.Fatalf("the job (pid %d) the shell left behind survived run's end", job)
		}
		if !strings.Contains(s.screen.String(), "left processes") {
			t.Fatalf("run did not say it stopped what the command left behind:\n%s", s.screen)
		}
	})
}

// TestInteractiveRunBgThenFg: after Ctrl-Z and bg the command runs in the
// background; reading the terminal stops it (SIGTTIN), which suspends the
// job again without taking the terminal from the shell; fg then gives it
// the terminal and it reads its line.
func TestInteractiveRunBgThenFg(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	s.expect("$ ", 10*time.Second)
	s.typeIn(`"$CLAIMCTL" run --ttl 10s tty-bg -- sh -c 'echo $$ $PPID > "$PIDS"; echo rea""dy; sleep 0.5; read line; echo "got:$line"'` + "\n")
	s.expect("ready", 15*time.Second)
	command, claimctl := s.pids()
	s.typeIn("\x1a")
	s.expect("Stopped", 10*time.Second)
	s.typeIn("bg\n")
	// The shell keeps the terminal: it runs this while the job is in the
	// background.
	s.typeIn(`echo shell-""has-it` + "\n")
	s.expect("shell-has-it\r\n", 10*time.Second)
	// The read from the background stops the command, and run with it.
	s.expect("suspended:", 10*time.Second)
	waitFor(t, 10*time.Second, "the command and claimctl to be stopped", func() bool { return stopped(command) && stopped(claimctl) })
	s.typeIn("jobs\n")
	s.expect("Stopped", 10*time.Second)
	s.typeIn("fg\n")
	waitFor(t, 10*time.Second, "the command and claimctl to run again", func() bool { return !stopped(command) && !stopped(claimctl) })
	s.typeIn("hello\n")
	s.expect("got:hello", 10*time.Second)
	s.typeIn("echo rc=$?\n")
	s.expect("rc=0", 10*time.Second)
}

// TestInteractiveRunKilledWhileSuspended: claimctl SIGKILLed while it and
// the command are suspended: the command (stopped) dies with it.
func TestInteractiveRunKilledWhileSuspended(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	s.expect("$ ", 10*time.Second)
	s.typeIn(`"$CLAIMCTL" run --ttl 10s tty-kill -- sh -c 'echo $$ $PPID > "$PIDS"; echo rea""dy; sleep 1000'` + "\n")
	s.expect("ready", 15*time.Second)
	command, claimctl := s.pids()
	s.typeIn("\x1a")
	s.expect("Stopped", 10*time.Second)
	waitFor(t, 10*time.Second, "the command and claimctl to be stopped", func() bool { return stopped(command) && stopped(claimctl) })
	if err := syscall.Kill(claimctl, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the suspended command to die with claimctl", func() bool { return !alive(command) })
	s.typeIn(`echo shell-""ok` + "\n")
	s.expect("shell-ok\r\n", 10*time.Second)
}

// TestInteractiveRunMaxRuntimeRestoresTheTerminal: --max-runtime stops a
// command that has the terminal (exit 124) and the terminal is the
// parent's again.
func TestInteractiveRunMaxRuntimeRestoresTheTerminal(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "/bin/sh", "-c",
		`"$CLAIMCTL" run --max-runtime 1s --grace 200ms tty-max -- sh -c 'echo $$ $PPID > "$PIDS"; read line'; echo "rc=$?"; read after; echo "after:$after"`)
	command, _ := s.pids()
	s.expect("rc=124", 15*time.Second)
	if alive(command) {
		t.Fatalf("the command (pid %d) survived --max-runtime", command)
	}
	s.typeIn("back\n")
	s.expect("after:back", 10*time.Second)
}

// TestBackgroundRunOnATerminalIsUnchanged: `claimctl run ... &` from an
// interactive shell is not in the terminal's foreground, so nothing is
// handed over: the shell keeps the terminal, a command that reads it is
// stopped by SIGTTIN as before, and claimctl itself is not stopped and
// still refuses SIGTSTP.
func TestBackgroundRunOnATerminalIsUnchanged(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	s := startPTYSession(t, endpoints, "bash", "--norc", "--noprofile", "--noediting", "-i")
	s.expect("$ ", 10*time.Second)
	s.typeIn(`"$CLAIMCTL" run tty-amp -- sh -c 'echo $$ $PPID > "$PIDS"; read line' &` + "\n")
	command, claimctl := s.pids()
	t.Cleanup(func() { _ = syscall.Kill(claimctl, syscall.SIGKILL) }) // its own group: the session's cleanup misses it
	waitFor(t, 10*time.Second, "the background command to be stopped by SIGTTIN", func() bool { return stopped(command) })
	s.typeIn(`echo shell-""has-it` + "\n")
	s.expect("shell-has-it\r\n", 10*time.Second)
	if err := syscall.Kill(claimctl, syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	s.expect("run cannot be suspended", 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if stopped(claimctl) {
		t.Fatalf("claimctl (pid %d) in the background is stopped (state %s); it must behave as before", claimctl, procState(claimctl))
	}
}
