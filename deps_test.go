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
