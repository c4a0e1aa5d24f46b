//go:build linux

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// job is one claimctl process started by a test.
type job struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recorderEnv returns the environment that makes the test binary a recorder
// labelled label, logging to log.
//
// Under -race the recorder is a race-built binary, whose runtime sleeps a
// second at exit unless told not to: that second would be held under the
// claim by every run.
func recorderEnv(log, label string, extra ...string) []string {
	return append([]string{"E2E_RECORDER=1", "E2E_LOG=" + log, "E2E_LABEL=" + label, "GORACE=atexit_sleep_ms=0"}, extra...)
}

// startClaimctl starts claimctl in the background with args against
// endpoints, recording its stdout and stderr; env is added to the
// environment after the defaults (1s dial and command timeouts), so it can
// override them. The process is SIGKILLed by pid at cleanup if still
// running. (inRun is the foreground counterpart.)
func startClaimctl(t *testing.T, endpoints []string, env []string, args ...string) *job {
	t.Helper()
	j := &job{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	j.cmd = exec.Command(claimctlBin, args...)
	j.cmd.Env = append(os.Environ(),
		"CLAIMCTL_ENDPOINTS="+strings.Join(endpoints, ","),
		"CLAIMCTL_DIAL_TIMEOUT=1s", "CLAIMCTL_COMMAND_TIMEOUT=1s",
		"USER=e2e", "XDG_CONFIG_HOME="+t.TempDir())
	j.cmd.Env = append(j.cmd.Env, env...)
	j.cmd.Stdout, j.cmd.Stderr = j.stdout, j.stderr
	if err := j.cmd.Start(); err != nil {
		t.Fatalf("start claimctl: %v", err)
	}
	go func() {
		j.code = exitCodeOf(j.cmd.Wait())
		close(j.done)
	}()
	t.Cleanup(func() {
		select {
		case <-j.done:
		default:
			_ = j.cmd.Process.Kill()
			<-j.done
		}
	})
	return j
}

// runRecorder starts `claimctl run FLAGS... -- <recorder>`; the last of
// flags is the claim name.
func runRecorder(t *testing.T, endpoints []string, log, label string, recEnv []string, flags ...string) *job {
	t.Helper()
	args := append([]string{"run"}, flags...)
	args = append(args, "--", os.Args[0], "-test.run=^$")
	return startClaimctl(t, endpoints, recorderEnv(log, label, recEnv...), args...)
}

// wait waits for the job to exit and returns its exit code.
func (j *job) wait(timeout time.Duration) int {
	j.t.Helper()
	select {
	case <-j.done:
		return j.code
	case <-time.After(timeout):
		j.t.Fatalf("claimctl %v did not exit within %v; stderr:\n%s", j.cmd.Args[1:], timeout, j.stderr)
	}
	return 0
}

// exited reports whether the job has exited.
func (j *job) exited() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond every 10ms until it holds, failing the test after
// timeout with a message naming what was awaited.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStarted waits until the recorder labelled label has started and
// returns the log so far.
func waitStarted(t *testing.T, log, label string, timeout time.Duration) record {
	t.Helper()
	var r record
	waitFor(t, timeout, "recorder "+label+" to start", func() bool {
		r, _ = readRecord(log)
		return r.starts[label] != 0
	})
	return r
}

// alive reports whether pid is a live process. A zombie is dead: it runs no
// code any more, and once claimctl itself is gone, its orphans are reaped by
// whatever init the machine has, whenever that gets to it.
func alive(pid int) bool {
	return procState(pid) != "" && procState(pid) != "Z"
}

// procState is the state letter from /proc/PID/stat ("R", "S", "Z", ...),
// or "" when there is no such process.
func procState(pid int) string {
	if pid <= 0 || unix.Kill(pid, 0) != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return "?"
}

// etcdClient returns a client for out-of-band actions (deleting keys,
// revoking leases) that a test performs behind claimctl's back.
func etcdClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func logPath(t *testing.T) string { return filepath.Join(t.TempDir(), "events.log") }

func itoa(n int) string { return strconv.Itoa(n) }

// statusJSON returns `claimctl status -o json NAME`.
func statusJSON(t *testing.T, endpoints []string, name string) string {
	t.Helper()
	out, err := exec.Command(claimctlBin, "--endpoints", strings.Join(endpoints, ","), "status", "-o", "json", name).Output()
	if err != nil {
		return ""
	}
	return string(out)
}
