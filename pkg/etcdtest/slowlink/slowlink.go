// Package slowlink is a network path with latency, for tests and
// benchmarks on one machine: a Unix-socket proxy to a TCP address that
// delivers every chunk of data a fixed time after it was sent.
package slowlink

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Link is a Unix-socket proxy to one member that delivers every chunk of
// data a fixed latency after it read it, in each direction and in order,
// without making a chunk wait for the delay of the one before it: the
// latency of a long network path, not a slow one.
//
// etcd's proxy (see etcdtest.Proxy) can delay traffic too, but it sleeps before
// forwarding each chunk in turn, so a chunk also waits out the delays of the
// chunks read before it, and a request that gRPC writes in several chunks
// pays several delays: a client that sends more small writes would be
// charged round trips it does not make.
type Link struct {
	ln       net.Listener
	dir      string
	endpoint string
	latency  atomic.Int64 // nanoseconds

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// New starts a link to target ("http://127.0.0.1:PORT") with no latency.
// Close it when done.
func New(target string) (*Link, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("link to %q: %w", target, err)
	}
	// Not t.TempDir(): its paths can pass the 108-byte socket path limit.
	dir, err := os.MkdirTemp("", "slowlink")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "link.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("link to %s: %w", target, err)
	}
	l := &Link{ln: ln, dir: dir, endpoint: "unix://" + sock}
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
	return l, nil
}

// Endpoint returns the link's address for clients, "unix:///path".
func (l *Link) Endpoint() string { return l.endpoint }

// SetLatency sets the one-way latency of data read from now on.
func (l *Link) SetLatency(d time.Duration) { l.latency.Store(int64(d)) }

// Close stops the link: it closes every connection through it and waits for
// its goroutines.
func (l *Link) Close() {
	l.ln.Close()
	l.mu.Lock()
	l.closed = true
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	os.RemoveAll(l.dir)
}

func (l *Link) track(conns ...net.Conn) bool {
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
func (l *Link) pump(dst, src net.Conn) {
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
