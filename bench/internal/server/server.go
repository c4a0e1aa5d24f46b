// Package server runs one claimctl-server on loopback for the benchmarks and
// reads its Prometheus metrics.
package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartTimeout bounds the member's start; StopTimeout its clean stop.
const (
	StartTimeout = 30 * time.Second
	StopTimeout  = 15 * time.Second
)

// Server is a running claimctl-server process.
type Server struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	logs *os.File
}

// Start runs bin with its data in dir/data and its logs in dir/server.log,
// with etcd's default timings and fsync on (a realistic member, not a test
// one), and returns once it prints its client URL.
func Start(bin, dir string) (*Server, error) {
	logs, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://127.0.0.1:0", "--listen-peer-urls", "http://127.0.0.1:0")
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logs.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, err
	}
	s := &Server{cmd: cmd, done: make(chan struct{}), logs: logs}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			urlc <- strings.TrimSpace(sc.Text())
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	select {
	case s.URL = <-urlc:
		return s, nil
	case <-s.done:
		logs.Close()
		return nil, fmt.Errorf("claimctl-server exited before it was ready; see %s", logs.Name())
	case <-time.After(StartTimeout):
		s.Stop()
		return nil, fmt.Errorf("claimctl-server not ready after %v; see %s", StartTimeout, logs.Name())
	}
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM to the server (by its pid), waits for a clean stop, and
// SIGKILLs it after StopTimeout.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(StopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.logs.Close()
}

// Metrics is one scrape: each series ("name{labels}") and its value.
type Metrics map[string]float64

// Scrape reads the server's /metrics, which etcd serves on the client URL.
func (s *Server) Scrape(ctx context.Context) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics parses Prometheus's text format (the subset etcd writes:
// no timestamps, no escaped quotes in label values).
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// Sum adds every series of metric name whose labels include all of want
// (each `key="value"`).
func (m Metrics) Sum(name string, want ...string) float64 {
	var total float64
	for series, v := range m {
		n, labels, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
				break
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// Label returns the value of label key in a series, "" if absent.
func Label(series, key string) string {
	_, labels, ok := strings.Cut(series, "{")
	if !ok {
		return ""
	}
	for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// Requests is the etcd traffic between two scrapes, as the server counted it.
type Requests struct {
	// Unary counts unary requests by method (Txn, Range, LeaseGrant, ...).
	Unary map[string]float64 `json:"unary"`
	// StreamMsgs counts messages received on streams by method (Watch:
	// creates and cancels; LeaseKeepAlive: renewals).
	StreamMsgs map[string]float64 `json:"stream_msgs"`
	// Puts, Deletes, Ranges and Txns are the MVCC store's counters;
	// WatchEvents the events sent to watchers.
	Puts, Deletes, Ranges, Txns, WatchEvents float64
}

// Total is every request message: unary requests plus stream messages.
func (r Requests) Total() float64 {
	var t float64
	for _, v := range r.Unary {
		t += v
	}
	for _, v := range r.StreamMsgs {
		t += v
	}
	return t
}

// Per divides every count by n.
func (r Requests) Per(n float64) Requests {
	out := Requests{Unary: map[string]float64{}, StreamMsgs: map[string]float64{}}
	for k, v := range r.Unary {
		out.Unary[k] = v / n
	}
	for k, v := range r.StreamMsgs {
		out.StreamMsgs[k] = v / n
	}
	out.Puts, out.Deletes, out.Ranges, out.Txns, out.WatchEvents = r.Puts/n, r.Deletes/n, r.Ranges/n, r.Txns/n, r.WatchEvents/n
	return out
}

// String lists the methods with their counts, largest first.
func (r Requests) String() string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range r.Unary {
		all = append(all, kv{k, v})
	}
	for k, v := range r.StreamMsgs {
		all = append(all, kv{k + "(stream)", v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var parts []string
	for _, e := range all {
		if e.v >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v))
		}
	}
	return strings.Join(parts, ", ")
}

// Diff returns the traffic from before to after.
//
// grpc_server_msg_received_total counts every RecvMsg the server makes,
// including the one that fails when a stream ends (EOF or cancel); so a
// KeepAliveOnce, which opens a stream, sends one renewal and closes it,
// shows as 2. Diff subtracts one per stream that ended (from
// grpc_server_handled_total) so that StreamMsgs counts messages the client
// really sent.
func Diff(before, after Metrics) Requests {
	r := Requests{Unary: map[string]float64{}, StreamMsgs: map[string]float64{}}
	for series, v := range after {
		d := v - before[series]
		if d == 0 {
			continue
		}
		name, _, _ := strings.Cut(series, "{")
		switch name {
		case "grpc_server_msg_received_total":
			method := Label(series, "grpc_method")
			if Label(series, "grpc_type") == "unary" {
				r.Unary[method] += d
			} else {
				r.StreamMsgs[method] += d
			}
		case "grpc_server_handled_total":
			if t := Label(series, "grpc_type"); t != "unary" && Label(series, "grpc_service") != "grpc.health.v1.Health" {
				r.StreamMsgs[Label(series, "grpc_method")] -= d
			}
		case "etcd_mvcc_put_total":
			r.Puts += d
		case "etcd_mvcc_delete_total":
			r.Deletes += d
		case "etcd_mvcc_range_total":
			r.Ranges += d
		case "etcd_mvcc_txn_total":
			r.Txns += d
		case "etcd_debugging_mvcc_events_total":
			r.WatchEvents += d
		}
	}
	for m, v := range r.StreamMsgs {
		if v == 0 {
			delete(r.StreamMsgs, m)
		}
	}
	return r
}
