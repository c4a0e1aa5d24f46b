//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// inResult is one finished claimctl process.
type inResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// inRunTimeout bounds every claimctl that inRun starts.
const inRunTimeout = 30 * time.Second

// inRun runs claimctl with args against endpoints (if any) and returns what
// it printed, its exit code and how long it took. env is added to the
// environment after the defaults (1s dial and command timeouts), so it can
// override them. A claimctl still running after inRunTimeout is killed (by
// its own pid, through the context) and fails the test.
func inRun(t *testing.T, endpoints []string, env []string, args ...string) inResult {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), inRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(c, claimctlBin, args...)
	cmd.Env = append(os.Environ(), "CLAIMCTL_DIAL_TIMEOUT=1s", "CLAIMCTL_COMMAND_TIMEOUT=1s",
		"USER=e2e", "XDG_CONFIG_HOME="+t.TempDir())
	if len(endpoints) > 0 {
		cmd.Env = append(cmd.Env, "CLAIMCTL_ENDPOINTS="+strings.Join(endpoints, ","))
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := inResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case c.Err() != nil:
		t.Fatalf("claimctl %v did not exit within %v; stderr:\n%s", args, inRunTimeout, r.stderr)
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("claimctl %v: %v", args, err)
	}
	return r
}

// inExpect runs claimctl like inRun and fails the test unless it exits with
// code; it returns the result for further checks.
func inExpect(t *testing.T, code int, endpoints []string, env []string, args ...string) inResult {
	t.Helper()
	r := inRun(t, endpoints, env, args...)
	if r.code != code {
		t.Fatalf("claimctl %v: exit %d, want %d; stderr:\n%s", args, r.code, code, r.stderr)
	}
	return r
}

// exitCodeOf turns the error of exec.Cmd.Wait into an exit code: 128+n for
// a process killed by signal n, -1 when it could not be waited for.
func exitCodeOf(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}
