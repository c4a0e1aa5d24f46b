package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Bounds on waiting for the binary.
const (
	readyTimeout = 30 * time.Second
	exitTimeout  = 15 * time.Second
)

func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring; stderr must then be exactly one line
	}{
		{"help", []string{"--help"}, exitOK, "--listen-client-urls", ""},
		{"version", []string{"--version"}, exitOK, "claimctl-server v", ""},
		{"unknown flag", []string{"--bogus"}, exitUsage, "", "unknown flag: --bogus"},
		{"shorthand v is not version", []string{"-v"}, exitUsage, "", "unknown shorthand flag"},
		{"bad number", []string{"--election-timeout", "soon"}, exitUsage, "", "--election-timeout"},
		{"argument", []string{"extra"}, exitUsage, "", `unexpected argument "extra"`},
		{"bad URL", []string{"--data-dir", t.TempDir(), "--listen-client-urls", "127.0.0.1:2379"}, exitUsage, "", "--listen-client-urls"},
		{"timings", []string{"--data-dir", t.TempDir(), "--election-timeout", "100"}, exitUsage, "", "at least 5 times --heartbeat-interval"},
		{"state", []string{"--data-dir", t.TempDir(), "--initial-cluster-state", "maybe"}, exitUsage, "", "--initial-cluster-state"},
		{"log level", []string{"--data-dir", t.TempDir(), "--log-level", "chatty"}, exitUsage, "", "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr, "v9.9.9")
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tc.wantStdout)
			}
			if tc.wantStderr == "" {
				if stderr.Len() != 0 {
					t.Errorf("stderr = %q, want nothing", stderr.String())
				}
				return
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) ||
				!strings.HasPrefix(stderr.String(), "claimctl-server: ") ||
				strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr = %q, want one claimctl-server: line containing %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	if got, _ := defaultDataDir("m1"); got != "/data/claimctl/m1.etcd" {
		t.Errorf("with XDG_DATA_HOME: %q", got)
	}
	t.Setenv("XDG_DATA_HOME", "relative") // ignored, per the XDG spec
	t.Setenv("HOME", "/home/u")
	if got, _ := defaultDataDir("default"); got != "/home/u/.local/share/claimctl/default.etcd" {
		t.Errorf("without XDG_DATA_HOME: %q", got)
	}
	if _, err := defaultDataDir("../x"); err == nil {
		t.Error("a name with a slash gave a default data dir")
	}
}

// TestBinary builds claimctl-server once and runs it as users and scripts
// do.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "claimctl-server")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("serve and SIGTERM", func(t *testing.T) {
		s := startBinary(t, bin,
			"--data-dir", filepath.Join(t.TempDir(), "data"),
			"--listen-client-urls", "http://127.0.0.1:0",
			"--listen-peer-urls", "http://127.0.0.1:0",
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--unsafe-no-fsync")
		url := s.waitURL(t)
		if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
			t.Fatalf("printed URL %q, want http://127.0.0.1:PORT", url)
		}

		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, "k", "v"); err != nil {
			t.Fatalf("put: %v", err)
		}
		resp, err := cli.Get(ctx, "k")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Fatalf("get = %v, %v; want v", resp, err)
		}
		cli.Close()

		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := s.waitExit(t); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0; stderr:\n%s", code, s.stderr.String())
		}
		want := "claimctl-server: member default ready, serving clients on " + url + "\n"
		if got := s.stderr.String(); got != want {
			t.Errorf("stderr = %q, want only %q", got, want)
		}
	})

	t.Run("bad flag", func(t *testing.T) {
		s := startBinary(t, bin, "--no-such-flag")
		if code := s.waitExit(t); code != exitUsage {
			t.Errorf("exit code = %d, want %d", code, exitUsage)
		}
		if got := s.stderr.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "--no-such-flag") {
			t.Errorf("stderr = %q, want one line naming the flag", got)
		}
	})

	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		taken := "http://" + ln.Addr().String()
		for _, flag := range []string{"--listen-client-urls", "--listen-peer-urls"} {
			args := []string{
				"--data-dir", filepath.Join(t.TempDir(), "data"),
				"--listen-client-urls", "http://127.0.0.1:0",
				"--listen-peer-urls", "http://127.0.0.1:0",
				flag, taken,
			}
			s := startBinary(t, bin, args...)
			if code := s.waitExit(t); code != exitFailure {
				t.Errorf("%s in use: exit code = %d, want %d", flag, code, exitFailure)
			}
			if got := s.stderr.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, taken+" ("+flag+")") || !strings.Contains(got, "address already in use") {
				t.Errorf("%s in use: stderr = %q, want one line naming %s", flag, got, taken)
			}
		}
	})
}

// binary is one run of claimctl-server.
type binary struct {
	cmd     *exec.Cmd
	urls    chan string
	stderr  *syncBuffer
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startBinary starts bin; t.Cleanup kills it by pid if it is still running.
func startBinary(t *testing.T, bin string, args ...string) *binary {
	t.Helper()
	s := &binary{
		cmd:    exec.Command(bin, args...),
		urls:   make(chan string, 1),
		stderr: &syncBuffer{},
		exited: make(chan struct{}),
	}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case s.urls <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		<-lines // all reads done before Wait, as exec requires
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// waitURL returns the first line of stdout.
func (s *binary) waitURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-s.urls:
		return u
	case <-s.exited:
		t.Fatalf("claimctl-server exited before printing its URL: %v\n%s", s.cmd.ProcessState, s.stderr.String())
	case <-time.After(readyTimeout):
		t.Fatalf("claimctl-server printed no URL within %v; stderr:\n%s", readyTimeout, s.stderr.String())
	}
	return ""
}

// waitExit returns the exit code.
func (s *binary) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(exitTimeout):
		t.Fatalf("claimctl-server still running %v after it should have exited; stderr:\n%s", exitTimeout, s.stderr.String())
	}
	var ee *exec.ExitError
	if err := s.waitErr; err != nil && !errors.As(err, &ee) {
		t.Fatalf("wait: %v", err)
	}
	return s.cmd.ProcessState.ExitCode()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
