//go:build linux || darwin

package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdEnv names an environment variable that, when set, is the path of an
// upstream etcd server binary (3.4 or later) to run instead of claimctl's
// own server: Start and StartEmbedded then run it as a process on loopback,
// and StartCluster runs it for its members instead of claimctl-server, with
// the same timings. It is how scripts/compat.sh runs the tests against
// every etcd release claimctl supports; tests need no change.
const EtcdEnv = "CLAIMCTL_TEST_ETCD"

// probeTimeout bounds one readiness probe of an upstream member. etcd
// accepts connections before it serves them, so a probe of a member that
// is not ready yet hangs until this runs out.
const probeTimeout = 500 * time.Millisecond

// etcdBinary is an upstream etcd executable and the release it reports.
type etcdBinary struct {
	path         string
	version      string // as reported, "3.5.21"
	major, minor int
}

var etcdVersionLine = regexp.MustCompile(`(?m)^etcd Version: (\d+)\.(\d+)\.(\S+)$`)

// upstreamEtcd returns the binary named by EtcdEnv, or nil if it is unset.
// It runs `etcd --version` (a few milliseconds) to pick the flags its
// release understands, and refuses releases older than 3.4.
func upstreamEtcd() (*etcdBinary, error) {
	path := os.Getenv(EtcdEnv)
	if path == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s=%s: etcd --version: %w", EtcdEnv, path, err)
	}
	m := etcdVersionLine.FindStringSubmatch(string(out))
	if m == nil {
		return nil, fmt.Errorf("%s=%s: etcd --version printed no \"etcd Version:\" line: %q", EtcdEnv, path, out)
	}
	b := &etcdBinary{path: path, version: m[1] + "." + m[2] + "." + m[3]}
	b.major, _ = strconv.Atoi(m[1])
	b.minor, _ = strconv.Atoi(m[2])
	if b.major != 3 || b.minor < 4 {
		return nil, fmt.Errorf("%s=%s: etcd %s is not supported (3.4 or later)", EtcdEnv, path, b.version)
	}
	return b, nil
}

// memberFlags are the flags of one member, in claimctl-server's names,
// which are etcd's own; upstream releases get the extra ones they need.
type memberFlags struct {
	name, dataDir, clientURL, peerURL string
	initialCluster, state, token      string
	tickMs, electionMs                uint
	logLevel                          string
	fsync                             bool
}

// args returns the command line for f: for claimctl-server if e is nil,
// else for e's release. Differences between releases:
//   - 3.4 logs through capnslog (plain text, deprecated) unless told
//     --logger zap, and has no --unsafe-no-fsync: its members fsync.
//   - 3.5 and later log through zap by default, and know --unsafe-no-fsync.
//
// No --experimental-* flag is used, so the renames of 3.6 and 3.7 do not
// matter; every release runs with its own defaults, as in production.
func (f memberFlags) args(e *etcdBinary) []string {
	args := []string{
		"--name", f.name,
		"--data-dir", f.dataDir,
		"--listen-client-urls", f.clientURL,
		"--advertise-client-urls", f.clientURL,
		"--listen-peer-urls", f.peerURL,
		"--initial-advertise-peer-urls", f.peerURL,
		"--initial-cluster", f.initialCluster,
		"--initial-cluster-state", f.state,
		"--initial-cluster-token", f.token,
		"--heartbeat-interval", strconv.FormatUint(uint64(f.tickMs), 10),
		"--election-timeout", strconv.FormatUint(uint64(f.electionMs), 10),
		"--log-level", f.logLevel,
	}
	if e != nil && e.minor == 4 {
		args = append(args, "--logger", "zap", "--log-outputs", "stderr")
	}
	if !f.fsync && (e == nil || e.minor >= 5) {
		args = append(args, "--unsafe-no-fsync")
	}
	return args
}

// probeReady closes ready once the member at url answers a Status call
// through cli, and gives up when exited is closed. etcd serves clients
// only once it has joined its cluster, so that is when it is ready.
func probeReady(cli *clientv3.Client, url string, exited <-chan struct{}, ready chan<- struct{}) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		_, err := cli.Status(ctx, url)
		cancel()
		if err == nil {
			close(ready)
			return
		}
		select {
		case <-exited:
			return
		case <-time.After(pollInterval):
		}
	}
}

// upstreamServer is a single upstream etcd member run by StartEmbedded.
type upstreamServer struct {
	cmd     *exec.Cmd
	url     string
	logs    *tailBuffer
	exited  chan struct{}
	waitErr error // set before exited is closed
	once    sync.Once
}

// startUpstream runs e as a single member with its data in dir, on free
// loopback ports (picked again if one was taken before etcd bound it), and
// returns once it serves clients.
func startUpstream(e *etcdBinary, dir string) (*upstreamServer, error) {
	for attempt := 1; ; attempt++ {
		s, err := tryStartUpstream(e, dir)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			return nil, err
		}
	}
}

func tryStartUpstream(e *etcdBinary, dir string) (*upstreamServer, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	f := memberFlags{
		name:           "etcdtest",
		dataDir:        dir,
		clientURL:      fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		peerURL:        peerURL,
		initialCluster: "etcdtest=" + peerURL,
		state:          "new",
		token:          fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), time.Now().UnixNano()),
		tickMs:         TickMs,
		electionMs:     ElectionMs,
		logLevel:       "error",
	}
	s := &upstreamServer{
		cmd:    exec.Command(e.path, f.args(e)...),
		url:    f.clientURL,
		logs:   &tailBuffer{max: logTail},
		exited: make(chan struct{}),
	}
	s.cmd.Stderr = s.logs
	s.cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(s.logs, "--- etcdtest: etcd %s %s\n", e.version, strings.Join(f.args(e), " "))
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.url}, DialTimeout: DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("client of etcd %s: %w", e.version, err)
	}
	defer cli.Close()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start etcd %s (%s): %w", e.version, e.path, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	ready := make(chan struct{})
	go probeReady(cli, s.url, s.exited, ready)

	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		err := fmt.Errorf("etcd %s in %s exited before serving (%v): %s", e.version, dir, s.waitErr, lastLine(s.logs.String()))
		if strings.Contains(s.logs.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, err
	case <-time.After(StartTimeout):
		s.Close()
		return nil, fmt.Errorf("etcd %s in %s not serving after %v:\n%s", e.version, dir, StartTimeout, s.logs.String())
	}
}

// Logs returns the end of the member's stderr.
func (s *upstreamServer) Logs() string { return s.logs.String() }

// Close stops the member with SIGTERM (etcd's graceful stop), and SIGKILL
// if it is still running after StartTimeout, and waits until it is reaped.
func (s *upstreamServer) Close() {
	s.once.Do(func() {
		// os.Process refuses to signal a reaped process, so this cannot
		// hit another process that reused the pid.
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(StartTimeout):
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.exited
		}
	})
}
