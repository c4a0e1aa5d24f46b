//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// serverMetric reads a counter or gauge from an etcd member's /metrics,
// parsed with expfmt: the one series of name, or with labels ("key=value"
// pairs) the sum of the series that carry them all.
func serverMetric(t *testing.T, endpoint, name string, labels ...string) float64 {
	t.Helper()
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics of %s: %v", endpoint, err)
	}
	fam, ok := families[name]
	if !ok || (len(labels) == 0 && len(fam.GetMetric()) != 1) {
		t.Fatalf("metrics of %s: no single series %s", endpoint, name)
	}
	sum, found := 0.0, false
	for _, m := range fam.GetMetric() {
		have := map[string]bool{}
		for _, l := range m.GetLabel() {
			have[l.GetName()+"="+l.GetValue()] = true
		}
		matches := true
		for _, l := range labels {
			matches = matches && have[l]
		}
		if !matches {
			continue
		}
		found = true
		if c := m.GetCounter(); c != nil {
			sum += c.GetValue()
		} else {
			sum += m.GetGauge().GetValue()
		}
	}
	if !found {
		t.Fatalf("metrics of %s: no series %s with %v", endpoint, name, labels)
	}
	return sum
}

// fleet starts n `claimctl run -n -E 0 --min-hold 10s NAME -- touch
// DIR/ran-i` at once and returns how many ran their command; every one
// must exit 0. --min-hold is the cron recipe's: without it, a host whose
// run starts after the winner finished would find the claim free and run
// the job again.
func fleet(t *testing.T, endpoints []string, n int, name, dir string) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = exec.Command(claimctlBin, "run", "-n", "-E", "0", "--min-hold", "10s", name, "--", "touch", filepath.Join(dir, fmt.Sprintf("ran-%d", i)))
		cmds[i].Env = append(os.Environ(), "CLAIMCTL_ENDPOINTS="+strings.Join(endpoints, ","), "USER=e2e", "XDG_CONFIG_HOME="+t.TempDir())
	}
	for _, c := range cmds {
		wg.Go(func() {
			if out, err := c.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("%v: %s", err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a fleet member failed: %s", e)
	}
	ran, _ := filepath.Glob(filepath.Join(dir, "ran-*"))
	for _, f := range ran {
		os.Remove(f)
	}
	return len(ran)
}

// TestCronFleetSkipsWithoutWriting: the cron pattern this tool exists for.
// While the claim is held, 16 hosts' `run -n -E 0` all skip, and the
// cluster commits no proposal for any of them (each costs one read); when
// the claim is free, exactly one of 16 started together runs.
func TestCronFleetSkipsWithoutWriting(t *testing.T) {
	m := etcdtest.Start(t)
	ep := m.Endpoints()
	dir := t.TempDir()
	const n = 16

	holder := exec.Command(claimctlBin, "--endpoints", strings.Join(ep, ","), "acquire", "--ttl", "60s", "nightly")
	token, err := holder.Output()
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	before := serverMetric(t, ep[0], "etcd_server_proposals_committed_total")
	if ran := fleet(t, ep, n, "nightly", dir); ran != 0 {
		t.Fatalf("%d of %d ran while the claim was held", ran, n)
	}
	after := serverMetric(t, ep[0], "etcd_server_proposals_committed_total")
	if after != before {
		t.Fatalf("%d skipped runs made the cluster commit %v proposals; a skipped run must not write", n, after-before)
	}
	t.Logf("%d skipped runs: %v proposals committed", n, after-before)

	rel := exec.Command(claimctlBin, "--endpoints", strings.Join(ep, ","), "release", strings.TrimSpace(string(token)))
	if out, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("release: %v: %s", err, out)
	}
	if ran := fleet(t, ep, n, "nightly", dir); ran != 1 {
		t.Fatalf("%d of %d fleet members ran on a free claim; exactly one must", ran, n)
	}
	// The counter moves when something does write: the check above can fail.
	if w := serverMetric(t, ep[0], "etcd_server_proposals_committed_total") - after; w < 3 {
		t.Fatalf("the run that took the claim committed only %v proposals; the metric does not count writes", w)
	}
}
