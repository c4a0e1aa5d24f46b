//go:build linux

package e2e

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterSlowLinkKeepsTheHold: claimctl H reaches the cluster through a
// link to one member (the point of the scenario) and holds a claim with
// `run --ttl 3s` while its child runs 8s; W, given the members directly,
// waits in line. From the moment H's child starts until its hold ends,
// every chunk of data on the link arrives TTL/6 (500ms) after it was sent,
// in each direction, so every round trip takes TTL/3. H runs with
// claimctl's default --command-timeout (5s): the e2e default of 1s would be
// the round trip itself. H must keep the claim: its child runs to its
// natural end, claimctl exits 0, W starts only after it, and the oracles
// hold.
//
// The delay starts with the hold, not before the acquire: a fresh
// connection over this link needs several round trips before the grant is
// answered, and run (rightly) refuses to start the command when the grant's
// send time + TTL - margin has passed by the time the claim is verified.
//
// The link is clSlowLink, not etcdtest.Proxy.Delay: that proxy sleeps
// before forwarding each chunk in turn, so a chunk also waits out the
// delays of the chunks read before it. With Delay(TTL/6) its one-way
// latency is TTL/6 to TTL/3 depending on what else is on the connection,
// and a renewal (a new gRPC stream) measured 2-4 x TTL/6 round trip. 4 x
// TTL/6 = 2TTL/3 is exactly when run must SIGTERM the command after the
// last acknowledged renewal (the grace is taken from the TTL/3 before the
// deadline), so no renewal schedule can keep a claim through it reliably;
// measured: lost in 5 of 5 runs, and in 4 of 4 with --grace 0.
func TestClusterSlowLinkKeepsTheHold(t *testing.T) {
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl = 3 * time.Second
	s := clNewScenario(t, cli, "slow-link")
	link := clNewSlowLink(t, c.Member(0).Endpoint())
	h := s.run([]string{link.Endpoint()}, "H", []string{"E2E_RUN_FOR=8s", "CLAIMCTL_COMMAND_TIMEOUT=5s"}, "--ttl", "3s")
	rh := s.waitStarted(h, "H", clStartBound)
	link.SetLatency(ttl / 6)
	t.Logf("latency %v each way from %v after H's child started", ttl/6, clDur(now()-rh.starts["H"]))
	w := s.run(eps, "W", []string{"E2E_RUN_FOR=200ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"])}, "--ttl", "3s")
	s.waitQueued(2)

	s.checkUndisturbed(h, "H", 30*time.Second)
	link.SetLatency(0)
	if code := w.wait(clExitBound); code != 0 {
		t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
	}
	r := s.record()
	if r.starts["W"] <= r.ends["H"] {
		t.Fatalf("W's child started at %d, not after H's child ended at %d", r.starts["W"], r.ends["H"])
	}
	s.checkOracles(r, ttl+clElectionBound)
}

// clSlowLink is a Unix-socket proxy to one member that delivers every chunk
// of data a fixed latency after it read it, in each direction and in
// order, without making a chunk wait for the delay of the one before it:
// the latency of a long network path, not a slow one.
type clSlowLink struct {
	ln       net.Listener
	endpoint string
	latency  atomic.Int64 // nanoseconds

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// clNewSlowLink starts a link to target ("http://127.0.0.1:PORT") with no
// latency; it is closed at cleanup.
func clNewSlowLink(t *testing.T, target string) *clSlowLink {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("slow link to %q: %v", target, err)
	}
	dir, err := os.MkdirTemp("", "clslow") // t.TempDir() may pass the 108-byte socket path limit
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "link.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("slow link to %s: %v", target, err)
	}
	l := &clSlowLink{ln: ln, endpoint: "unix://" + sock}
	l.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", u.Host)
			if err != nil {
				in.Close()
				continue
			}
			if !l.track(in, out) {
				return
			}
			l.wg.Go(func() { l.pump(out, in) })
			l.wg.Go(func() { l.pump(in, out) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		l.closed = true
		for _, c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
		os.RemoveAll(dir)
	})
	return l
}

// Endpoint returns the link's address for claimctl, "unix:///path".
func (l *clSlowLink) Endpoint() string { return l.endpoint }

// SetLatency sets the one-way latency of data read from now on.
func (l *clSlowLink) SetLatency(d time.Duration) { l.latency.Store(int64(d)) }

func (l *clSlowLink) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	l.conns = append(l.conns, conns...)
	return true
}

// pump copies src to dst, each chunk latency after it was read, and closes
// both when either side ends.
func (l *clSlowLink) pump(dst, src net.Conn) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	chunks := make(chan chunk, 1<<12)
	l.wg.Go(func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				chunks <- chunk{time.Now().Add(time.Duration(l.latency.Load())), b[:n]}
			}
			if err != nil {
				return
			}
		}
	})
	var werr error
	for c := range chunks {
		if werr != nil {
			continue // drain, so that the reader can end
		}
		time.Sleep(time.Until(c.due))
		if _, werr = dst.Write(c.b); werr != nil {
			src.Close()
		}
	}
	dst.Close()
	src.Close()
}
