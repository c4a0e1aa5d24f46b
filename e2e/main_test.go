package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// claimctlBin is the claimctl binary built once for this test binary by
// TestMain; it is written before any test runs and never changed after.
var claimctlBin string

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
	claimctlBin = filepath.Join(dir, "claimctl")
	build := exec.Command("go", "build", "-o", claimctlBin, "github.com/claimctl/claimctl")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building claimctl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
