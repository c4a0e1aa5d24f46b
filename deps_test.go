package main

import (
	"os"
	"os/exec"
	"path/filepath"
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
		// Its default registry's process and Go collectors (and procfs)
		// cost every invocation about 0.4 ms at init; pkg/runmetrics
		// writes the textfile with client_model and expfmt alone.
		if strings.HasPrefix(pkg, "github.com/prometheus/client_golang") {
			t.Errorf("claimctl links %s; write metrics files with client_model and expfmt (pkg/runmetrics)", pkg)
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

// TestPackageBoundaries keeps the layout the README describes: the claim
// protocol, the supervisor and the other libraries in pkg/ know nothing of
// Cobra or Viper (they are usable, and testable, without a command line);
// pkg/supervise knows nothing of etcd; and Viper is read in cmd/config.go
// alone, so that every setting goes through its one table.
func TestPackageBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./pkg/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			switch {
			case strings.HasPrefix(imp, "github.com/spf13/cobra"), strings.HasPrefix(imp, "github.com/spf13/viper"), strings.HasPrefix(imp, "github.com/spf13/pflag"):
				t.Errorf("%s imports %s; command-line code belongs in cmd/", pkg, imp)
			case strings.HasSuffix(pkg, "/pkg/supervise") && (strings.HasPrefix(imp, "go.etcd.io/") || strings.HasSuffix(imp, "/pkg/claim")):
				t.Errorf("pkg/supervise imports %s; the supervisor knows processes, not claims", imp)
			}
		}
	}

	out, err = exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .GoFiles " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, files, _ := strings.Cut(line, " ")
		for _, f := range strings.Fields(files) {
			if pkg == "github.com/claimctl/claimctl/cmd" && f == "config.go" {
				continue
			}
			dir := strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/claimctl/claimctl"), "/")
			src, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(src), `"github.com/spf13/viper"`) {
				t.Errorf("%s imports Viper; only cmd/config.go may", filepath.Join(dir, f))
			}
		}
	}
}
