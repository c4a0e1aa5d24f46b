//go:build linux

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// openPTY opens a pseudo-terminal pair: what claimctl writes to tty, the
// test reads from ptm, as a terminal emulator would.
func openPTY(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { ptm.Close(); tty.Close() })
	return ptm, tty
}

// TestWaitingStatusOnATerminal: while waiting on a terminal, stderr shows one
// status line redrawn in place (who holds the claim, for how long, the queue
// position) and cleared when waiting ends; colour only when allowed.
func TestWaitingStatusOnATerminal(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	holder := startClaimctl(t, endpoints, nil, "acquire", "--note", "release 42", "--owner", "alice@build1", "deploy")
	if code := holder.wait(10 * time.Second); code != 0 {
		t.Fatalf("holder: exit %d: %s", code, holder.stderr)
	}
	for _, tc := range []struct {
		name  string
		env   []string
		color bool
	}{
		{"NO_COLOR", []string{"NO_COLOR=1"}, false},
		{"color", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ptm, tty := openPTY(t)
			cmd := exec.Command(claimctlBin, "--endpoints", strings.Join(endpoints, ","), "acquire", "-w", "2500ms", "deploy")
			cmd.Env = append(os.Environ(), "USER=e2e", "TERM=xterm")
			cmd.Env = append(cmd.Env, tc.env...)
			cmd.Stderr = tty
			var screen bytes.Buffer
			var mu sync.Mutex
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := ptm.Read(buf)
					mu.Lock()
					screen.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 75 {
				t.Fatalf("acquire -w on a held claim: %v, want exit 75", err)
			}
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			out := screen.String()
			mu.Unlock()
			redraws := strings.Count(out, "\r\x1b[K")
			if redraws < 3 {
				t.Fatalf("status line drawn %d times in 2.5s, want a redraw every second:\n%q", redraws, out)
			}
			for _, want := range []string{"waiting for deploy (0s): held by alice@build1 (release 42) for ", "waiting for deploy (2s)", "position 1 in queue"} {
				if !strings.Contains(out, want) {
					t.Fatalf("terminal output lacks %q:\n%q", want, out)
				}
			}
			if strings.Contains(out, "\n") && strings.Index(out, "\n") < strings.LastIndex(out, "waiting for") {
				t.Fatalf("the status line scrolled instead of being redrawn in place:\n%q", out)
			}
			if hasColor := strings.Contains(out, "\x1b[33m"); hasColor != tc.color {
				t.Fatalf("colour in output = %v, want %v:\n%q", hasColor, tc.color, out)
			}
			// The line is cleared before the final message.
			if !strings.Contains(out, "\r\x1b[Kclaimctl: acquire deploy: stopped waiting") && !strings.Contains(out, "\r\x1b[K\x1b[") {
				t.Fatalf("the status line was not cleared before the error:\n%q", out)
			}
		})
	}
}
