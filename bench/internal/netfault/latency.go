package netfault

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Latency forwards a Unix socket to the server's TCP client port and
// delivers every byte oneWay after it was sent, in each direction: a
// network with that much latency and no bandwidth limit.
//
// etcd's proxy (used by Proxy for cuts) also delays traffic, but one chunk
// after another: a chunk waits for its own delay only after the chunk before
// it was delivered, so a burst of n small writes (HTTP/2 sends several per
// request) arrives n delays late, which would charge a chatty client for
// round trips it does not make. Here each chunk is stamped when read and
// written out at stamp + oneWay, so chunks in flight overlap as on a real
// link.
type Latency struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	dir    string

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
	// Endpoint is the address clients dial: "unix:///path".
	Endpoint string
}

// NewLatency starts a delaying proxy to target ("http://127.0.0.1:PORT").
func NewLatency(target string, oneWay time.Duration) (*Latency, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "claimbench-latency")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "l.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("latency proxy: %w", err)
	}
	l := &Latency{ln: ln, target: u.Host, oneWay: oneWay, dir: dir, Endpoint: "unix://" + sock}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func (l *Latency) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, s)
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pipe(s, c)
		go l.pipe(c, s)
	}
}

// chunk is data read at a time, to be written at that time + oneWay.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk oneWay after it was read. When src
// ends, dst's write side is closed after the data in flight is delivered.
func (l *Latency) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32*1024)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(l.oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			src.Close()
			for range q {
				// Let the reader finish.
			}
			return
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Close stops accepting, closes every connection through the proxy and
// waits for its goroutines.
func (l *Latency) Close() error {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return os.RemoveAll(l.dir)
}

var _ io.Closer = (*Latency)(nil)
