package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientDoesNotLinkEtcdServer keeps etcd's server packages out of the
// claimctl binary: linking them doubles start-up time and adds megabytes of
// memory to every cron and CI invocation. Tests may use them; the binary
// may not.
func TestClientDoesNotLinkEtcdServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/etcd/server/", "go.etcd.io/bbolt", "go.etcd.io/raft/", "github.com/claimctl/claimctl/pkg/etcdserver", "github.com/claimctl/claimctl/pkg/etcdtest"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("claimctl links %s; keep server-side packages out of the client", pkg)
			}
		}
	}
}

// TestRunnerDoesNotLinkEtcd keeps pkg/runner a supervisor that can be read
// and tested without etcd: it consumes a claim through its Hold interface,
// and only cmd/ hands it a *claim.Hold. Its tests may use etcd; the package
// may not.
func TestRunnerDoesNotLinkEtcd(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./pkg/runner").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.etcd.io/", "github.com/claimctl/claimctl/pkg/claim"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("pkg/runner links %s; it takes a runner.Hold, not a *claim.Hold", pkg)
			}
		}
	}
}
