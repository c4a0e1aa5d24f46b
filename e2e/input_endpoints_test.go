//go:build linux

package e2e

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// inBlackhole listens on a loopback port and accepts connections but never
// reads or writes: the peer of a partition that drops everything, as seen
// from the client's side. It returns the address; everything is closed at
// cleanup.
func inBlackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestBlackholedEndpointIsUnavailable: an endpoint that accepts the TCP
// connection and then never answers is "unavailable" (69) for every verb,
// within --dial-timeout + --command-timeout, naming the endpoint; never
// "busy" (75), even when -w runs out first. With TLS configured no
// handshake diagnosis is attempted (the handshake never finished), so it
// takes no longer.
func TestBlackholedEndpointIsUnavailable(t *testing.T) {
	addr := inBlackhole(t)
	timeouts := []string{"CLAIMCTL_DIAL_TIMEOUT=500ms", "CLAIMCTL_COMMAND_TIMEOUT=1s"}
	const bound = 1500*time.Millisecond + 2*time.Second // dial + command timeout, plus process start-up slack
	pki := inNewPKI(t)
	token := "ct1.1.2.3.Y2xhaW1jdGwv.ZGVwbG95"
	for _, tc := range []struct {
		name string
		eps  string
		args []string
		want string
	}{
		{"acquire", addr, []string{"acquire", "deploy"}, "acquire deploy"},
		{"acquire -n", addr, []string{"acquire", "-n", "deploy"}, "acquire deploy"},
		{"acquire -w shorter than the timeouts", addr, []string{"acquire", "-w", "300ms", "deploy"}, "acquire deploy"},
		{"run", addr, []string{"run", "deploy", "--", "true"}, "acquire deploy"},
		{"status", addr, []string{"status", "deploy"}, "status deploy"},
		{"list", addr, []string{"list"}, "list"},
		{"renew", addr, []string{"renew", token}, "renew deploy"},
		{"release", addr, []string{"release", token}, "release deploy"},
		{"release --force", addr, []string{"release", "--force", "deploy"}, "status deploy"},
		{"over TLS", "https://" + addr, []string{"--cacert", pki.ca, "--cert", pki.clientCert, "--key", pki.clientKey, "acquire", "deploy"}, "acquire deploy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := inExpect(t, 69, []string{tc.eps}, timeouts, tc.args...)
			want := "claimctl: " + tc.want + ": etcd unavailable at " + tc.eps + ": no answer in time\n"
			if r.stderr != want {
				t.Errorf("stderr %q, want %q", r.stderr, want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if r.took > bound {
				t.Errorf("took %v, want at most %v", r.took, bound)
			}
			if strings.Contains(r.stderr, "TLS handshake") {
				t.Errorf("a handshake that never finished was diagnosed as a TLS problem: %s", r.stderr)
			}
		})
	}
}

// TestDeadOrBlackholedEndpointAmongLiveOnesIsPassedOver: claimctl connects
// to one endpoint, picked at random, before the others (cmd/connect.go). A
// first pick that refuses connections or never answers must not fail the
// command or cost it a request timeout: the others are tried after a
// moment, and every run succeeds, with --command-timeout 1s, whichever
// order the endpoints come in and whichever one is picked first.
func TestDeadOrBlackholedEndpointAmongLiveOnesIsPassedOver(t *testing.T) {
	live := etcdtest.Start(t).Endpoints()[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	timeouts := []string{"CLAIMCTL_DIAL_TIMEOUT=5s", "CLAIMCTL_COMMAND_TIMEOUT=1s"}
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"refused", dead},
		{"blackholed", inBlackhole(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Eight runs per order: each picks the bad endpoint first
			// half of the time, so a regression shows in all but 1 in
			// 65536 runs of this test.
			for i := range 16 {
				eps := []string{tc.bad, live}
				if i%2 == 1 {
					eps = []string{live, tc.bad}
				}
				r := inExpect(t, 0, eps, timeouts, "run", "passover-"+tc.name, "--", "true")
				if r.stderr != "" {
					t.Fatalf("run %d with endpoints %v said: %s", i, eps, r.stderr)
				}
			}
		})
	}
}
