//go:build !(linux || darwin)

package etcdtest

import (
	"fmt"
	"os"
	"testing"
)

// EtcdEnv names an environment variable that, on Linux and macOS, is the
// path of an upstream etcd server binary for the tests to run instead of
// claimctl's own server. Elsewhere setting it is an error.
const EtcdEnv = "CLAIMCTL_TEST_ETCD"

type etcdBinary struct{ version string }

type upstreamServer struct{ url string }

func (s *upstreamServer) Logs() string { return "" }
func (s *upstreamServer) Close()       {}

func upstreamEtcd() (*etcdBinary, error) {
	if p := os.Getenv(EtcdEnv); p != "" {
		return nil, fmt.Errorf("%s=%s: running an upstream etcd is supported on Linux and macOS only", EtcdEnv, p)
	}
	return nil, nil
}

func startUpstream(*etcdBinary, string) (*upstreamServer, error) {
	return nil, fmt.Errorf("%s: not supported on this system", EtcdEnv)
}

// clusterFromEnv: clusters run on Linux and macOS only.
func clusterFromEnv(t testing.TB) []string {
	if os.Getenv(MembersEnv) != "" {
		t.Skipf("etcdtest: %s: clusters run on Linux and macOS only", MembersEnv)
	}
	return nil
}
