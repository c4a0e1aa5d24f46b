//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// claimctlBin and serverBin are the claimctl and claimctl-server binaries
// built once for this test binary by TestMain (and serverBin is the one
// etcdtest.StartCluster runs); they are set before any test runs and never
// changed after.
var claimctlBin, serverBin string

func TestMain(m *testing.M) {
	if os.Getenv("E2E_RECORDER") == "1" {
		recorderMain()
		return
	}
	dir, err := os.MkdirTemp("", "claimctl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	claimctlBin, serverBin = filepath.Join(dir, "claimctl"), filepath.Join(dir, "claimctl-server")
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/claimctl/claimctl", "github.com/claimctl/claimctl/claimctl-server")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building claimctl: %v\n%s", err, out)
		os.Exit(1)
	}
	// StartCluster runs this claimctl-server instead of building its own.
	if os.Getenv(etcdtest.ServerBinEnv) == "" {
		os.Setenv(etcdtest.ServerBinEnv, serverBin)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
