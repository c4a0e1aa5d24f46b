//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimctl/claimctl/internal/promtooltest"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestRecipeCronMetricsAlerts runs the "Cron, node_exporter and alerts"
// recipe of docs/recipes.md as written, on three hosts at once (each with
// its own textfile directory), and a fourth host whose claimctl is killed
// while it holds the claim. The files must say what happened (one ok, two
// skipped, one still holding), and, with promtool, the recipe's alert rules
// must fire on them once the last success is 27 hours old and the killed
// hold is over an hour old, and stay quiet half an hour after the run.
func TestRecipeCronMetricsAlerts(t *testing.T) {
	rec := recipes(t)
	line := rec["cron-metrics"]
	if !strings.Contains(line, "/var/lib/node_exporter/textfile/") || !strings.Contains(line, "/usr/local/bin/report") {
		t.Fatalf("the cron-metrics recipe changed; update this test: %s", line)
	}
	m := etcdtest.Start(t)
	r := newRecipeEnv(t, m.Endpoints())
	dirs := make([]string, 4)
	for i := range dirs {
		dirs[i] = filepath.Join(r.dir, fmt.Sprintf("textfile-h%d", i)) + "/"
		if err := os.Mkdir(dirs[i], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	outs, codes := make([]string, 3), make([]int, 3)
	for host := range 3 {
		script := strings.ReplaceAll(quick(line), "/var/lib/node_exporter/textfile/", dirs[host])
		script = strings.ReplaceAll(script, "/usr/local/bin/report", "nightly-report")
		wg.Go(func() { outs[host], codes[host] = r.sh(script) })
	}
	wg.Wait()
	outcomes := map[string]int{}
	var lastSuccess float64
	for host := range 3 {
		if codes[host] != 0 {
			t.Fatalf("host %d: exit %d: %s", host, codes[host], outs[host])
		}
		g := promGauges(t, dirs[host]+"claimctl_nightly.prom")
		for _, o := range []string{"ok", "skipped"} {
			if g[`claimctl_last_run_outcome{claim="nightly",outcome="`+o+`"}`] == 1 {
				outcomes[o]++
			}
		}
		lastSuccess = max(lastSuccess, g[`claimctl_last_success_timestamp_seconds{claim="nightly"}`])
	}
	if outcomes["ok"] != 1 || outcomes["skipped"] != 2 || r.runs("nightly-report") != 1 {
		t.Fatalf("outcomes %v, %d runs of the job; want one ok and two skipped, the job run once", outcomes, r.runs("nightly-report"))
	}
	if d := time.Since(time.Unix(int64(lastSuccess), 0)); lastSuccess == 0 || d > time.Minute {
		t.Fatalf("last success %v (%v ago); want the run just now", lastSuccess, d)
	}

	// Host 3 takes the claim (the others' --min-hold is over) and is killed.
	waitFor(t, 15*time.Second, "the claim to be free", func() bool { return strings.Contains(statusJSON(t, m.Endpoints(), "nightly"), `"holders": []`) })
	killed := startClaimctl(t, m.Endpoints(), nil, "run", "--metrics-file", dirs[3], "nightly", "--", "sleep", "60")
	waitFor(t, 15*time.Second, "host 3 to write holding", func() bool {
		b, _ := os.ReadFile(dirs[3] + "claimctl_nightly.prom")
		return strings.Contains(string(b), `claimctl_holding{claim="nightly"} 1`)
	})
	_ = killed.cmd.Process.Kill()
	killed.wait(10 * time.Second)

	promtool := os.Getenv(promtooltest.Env)
	if promtool == "" {
		t.Skip(promtooltest.SkipHint)
	}
	// promtool's clock starts at the Unix epoch: move every timestamp so
	// that the last success is at 3h, and evaluate 27h later and 30m later.
	const success = 3 * time.Hour
	shift := func(name string, v float64) float64 {
		if strings.HasSuffix(name, "_timestamp_seconds") && v > 0 {
			return v - lastSuccess + success.Seconds()
		}
		return v
	}
	var series []promtooltest.Series
	for i, dir := range dirs {
		s, err := promtooltest.Scrape(dir, fmt.Sprintf("h%d:9100", i), int((success+27*time.Hour)/time.Minute), shift)
		if err != nil {
			t.Fatal(err)
		}
		series = append(series, s...)
	}
	err := promtooltest.Run(promtool, "../docs/alerts/claimctl.rules.yml", t.TempDir(), series, []promtooltest.Expect{
		{EvalTime: success + 30*time.Minute, Alertname: "NightlyJobDidNotRun"},
		{EvalTime: success + 30*time.Minute, Alertname: "ClaimHeldTooLong"},
		{EvalTime: success + 27*time.Hour, Alertname: "NightlyJobDidNotRun", Alerts: promtooltest.NightlyAlert("1d 3h 0m 0s")},
		{EvalTime: success + 27*time.Hour, Alertname: "ClaimHeldTooLong", Alerts: promtooltest.HeldAlert("h3:9100")},
	})
	if err != nil {
		t.Fatal(err)
	}
}
