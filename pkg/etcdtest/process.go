//go:build linux || darwin

package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ProcessMember is one member process of a Cluster. Across restarts it keeps
// its name, ports and data directory.
type ProcessMember struct {
	c         *Cluster
	index     int
	name      string
	clientURL string
	peerURL   string
	dataDir   string
	logs      *tailBuffer

	mu      sync.Mutex
	proc    *process         // the current or last launch; nil before the first
	stopped bool             // sent SIGSTOP and no SIGCONT since
	client  *clientv3.Client // for Leader and WaitHealthy; new per launch
}

// process is one launch of a member.
type process struct {
	cmd     *exec.Cmd
	ready   chan struct{} // closed when the member prints its first URL
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // set before exited is closed
}

// Name returns the member's name ("m0", "m1", ...).
func (m *ProcessMember) Name() string { return m.name }

// Endpoint returns the member's client URL, "http://127.0.0.1:PORT".
func (m *ProcessMember) Endpoint() string { return m.clientURL }

// DataDir returns the member's data directory.
func (m *ProcessMember) DataDir() string { return m.dataDir }

// Pid returns the process id of the member's current or last process.
func (m *ProcessMember) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// Running reports whether the member's process exists (it may be stopped).
func (m *ProcessMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running()
}

func (m *ProcessMember) running() bool {
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.exited:
		return false
	default:
		return true
	}
}

// serving reports whether the member is running and not stopped.
func (m *ProcessMember) serving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running() && !m.stopped
}

// cli returns the member's client for the current launch.
func (m *ProcessMember) cli() *clientv3.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// Logs returns the end of the member's stderr, across restarts.
func (m *ProcessMember) Logs() string { return m.logs.String() }

// Kill sends SIGKILL, as in a crash or power cut, and waits until the
// process is gone. It fails the test if the member is not running.
func (m *ProcessMember) Kill() {
	m.c.t.Helper()
	if !m.Running() {
		m.c.t.Fatalf("etcdtest: kill %s: not running", m.name)
	}
	if err := m.kill(); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

// Stop sends SIGSTOP: the process freezes with its connections open, as in
// a long GC pause or a stalled VM. Peers and clients see silence, not a
// closed connection.
func (m *ProcessMember) Stop() {
	m.c.t.Helper()
	m.signal(syscall.SIGSTOP)
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
}

// Cont sends SIGCONT to a member stopped by Stop.
func (m *ProcessMember) Cont() {
	m.c.t.Helper()
	m.signal(syscall.SIGCONT)
	m.mu.Lock()
	m.stopped = false
	m.mu.Unlock()
}

// Restart relaunches the member after Kill, from its data directory, and
// waits until it serves; see Cluster.Restart. A client that knew only this
// member may need up to gRPC's reconnect backoff to find it again; make a
// new one if that matters.
func (m *ProcessMember) Restart() {
	m.c.t.Helper()
	m.c.Restart(m.index)
}

func (m *ProcessMember) signal(sig syscall.Signal) {
	m.c.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		m.c.t.Fatalf("etcdtest: send %v to %s: not running", sig, m.name)
	}
	if err := m.proc.cmd.Process.Signal(sig); err != nil {
		m.c.t.Fatalf("etcdtest: send %v to %s (pid %d): %v", sig, m.name, m.proc.cmd.Process.Pid, err)
	}
}

// kill SIGKILLs the current process, if any, and waits for it to be reaped.
func (m *ProcessMember) kill() error {
	m.mu.Lock()
	p := m.proc
	running := m.running()
	m.stopped = false
	m.mu.Unlock()
	if !running {
		return nil
	}
	// os.Process signals by pid and refuses once the process is reaped,
	// so this cannot hit an unrelated process that reused the pid.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", m.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(m.c.opts.Timeout):
		return fmt.Errorf("kill %s (pid %d): still not reaped after %v", m.name, p.cmd.Process.Pid, m.c.opts.Timeout)
	}
}

// launch starts a new process for the member.
func (m *ProcessMember) launch(state string) error {
	c := m.c
	var cluster []string
	for _, o := range c.members {
		cluster = append(cluster, o.name+"="+o.peerURL)
	}
	f := memberFlags{
		name:           m.name,
		dataDir:        m.dataDir,
		clientURL:      m.clientURL,
		peerURL:        m.peerURL,
		initialCluster: strings.Join(cluster, ","),
		state:          state,
		token:          c.token,
		tickMs:         c.opts.TickMs,
		electionMs:     c.opts.ElectionMs,
		logLevel:       c.opts.LogLevel,
		fsync:          c.opts.Fsync,
	}
	args := f.args(c.bin.etcd)
	p := &process{
		cmd:    exec.Command(c.bin.path, args...),
		ready:  make(chan struct{}),
		exited: make(chan struct{}),
	}
	name := filepath.Base(c.bin.path)
	if c.bin.etcd == nil {
		// claimctl-server prints its client URL once it serves.
		p.cmd.Stdout = &firstLine{done: p.ready}
	} else {
		name += " " + c.bin.etcd.version
	}
	p.cmd.Stderr = m.logs
	p.cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(m.logs, "--- etcdtest: %s %s\n", name, strings.Join(args, " "))

	// A fresh client: one that watched the member die may be in gRPC's
	// reconnect backoff, which grows to minutes.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.clientURL},
		DialTimeout: DialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("client of %s: %w", m.name, err)
	}
	if err := c.bin.withLock(syscall.LOCK_SH, p.cmd.Start); err != nil {
		cli.Close()
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.mu.Lock()
	m.proc = p
	m.stopped = false
	old := m.client
	m.client = cli
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if c.bin.etcd != nil {
		// Upstream etcd prints nothing on stdout: ask it.
		go probeReady(cli, m.clientURL, p.exited, p.ready)
	}
	return nil
}

// waitReady waits until the current process prints its client URL.
func (m *ProcessMember) waitReady(ctx context.Context) error {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		// A member that fails to start exits 1 with one line on stderr.
		err := fmt.Errorf("%s exited before serving (%v): %s", m.name, p.waitErr, lastLine(m.logs.String()))
		if strings.Contains(m.logs.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s not serving after %v: %w", m.name, m.c.opts.Timeout, context.Cause(ctx))
	}
}

// firstLine closes done when the first newline is written, and discards
// everything.
type firstLine struct {
	once sync.Once
	done chan struct{}
}

func (f *firstLine) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '\n') >= 0 {
		f.once.Do(func() { close(f.done) })
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
