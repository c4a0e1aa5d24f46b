// Package promtooltest runs Prometheus alerting rules against textfiles
// claimctl wrote, with promtool's own rule evaluator (`promtool test
// rules`), for the tests of the alert recipe (pkg/runmetrics and e2e). It is
// test support: nothing in claimctl imports it.
package promtooltest

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Env names the variable that gives promtool's path; tests skip without it.
const Env = "CLAIMCTL_PROMTOOL"

// SkipHint is what a test says when Env is unset.
const SkipHint = Env + " is not set; to test the alert rules run: " + Env + "=$(scripts/promtool.sh) go test ..."

// Series is one promtool input series.
type Series struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

// Alert is one expected alert.
type Alert struct {
	ExpLabels      map[string]string `json:"exp_labels"`
	ExpAnnotations map[string]string `json:"exp_annotations,omitempty"`
}

// Expect says which alerts of one rule must be firing at an evaluation
// time; an empty Alerts means none.
type Expect struct {
	EvalTime  time.Duration
	Alertname string
	Alerts    []Alert
}

// Scrape returns the samples of the .prom files in dir as input series with
// the labels a scrape of node_exporter adds (instance, job "node"), each
// constant for steps minutes from promtool's time 0: a textfile does not
// change until the next run rewrites it. shift, if not nil, maps each
// sample's value (given its metric name), so that files written now can be
// moved onto promtool's clock, which starts at the Unix epoch.
func Scrape(dir, instance string, steps int, shift func(name string, v float64) float64) ([]Series, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.prom"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no .prom file in %s (%v)", dir, err)
	}
	var out []Series
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := parser.TextToMetricFamilies(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		for name, mf := range mfs {
			for _, m := range mf.GetMetric() {
				labels := map[string]string{"instance": instance, "job": "node"}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				var sel []string
				for _, k := range slices.Sorted(maps.Keys(labels)) {
					sel = append(sel, k+"="+strconv.Quote(labels[k]))
				}
				v := m.GetGauge().GetValue()
				if shift != nil {
					v = shift(name, v)
				}
				out = append(out, Series{
					Series: name + "{" + strings.Join(sel, ",") + "}",
					Values: strconv.FormatFloat(v, 'f', -1, 64) + "x" + strconv.Itoa(steps),
				})
			}
		}
	}
	return out, nil
}

// Run writes a `promtool test rules` file for rules, series and want in
// dir and runs it; the error has promtool's output and the test file.
func Run(promtool, rules, dir string, series []Series, want []Expect) error {
	type ruleTest struct {
		EvalTime  string  `json:"eval_time"`
		Alertname string  `json:"alertname"`
		ExpAlerts []Alert `json:"exp_alerts"`
	}
	type group struct {
		Interval       string     `json:"interval"`
		InputSeries    []Series   `json:"input_series"`
		AlertRuleTests []ruleTest `json:"alert_rule_test"`
	}
	slices.SortFunc(series, func(a, b Series) int { return strings.Compare(a.Series, b.Series) })
	g := group{Interval: "1m", InputSeries: series}
	for _, w := range want {
		alerts := w.Alerts
		if alerts == nil {
			alerts = []Alert{}
		}
		g.AlertRuleTests = append(g.AlertRuleTests, ruleTest{EvalTime: model.Duration(w.EvalTime).String(), Alertname: w.Alertname, ExpAlerts: alerts})
	}
	abs, err := filepath.Abs(rules)
	if err != nil {
		return err
	}
	// JSON, which YAML parsers read as YAML, so that no YAML is written by hand.
	b, err := json.MarshalIndent(map[string]any{"rule_files": []string{abs}, "evaluation_interval": "1m", "tests": []group{g}}, "", "  ")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "promtool-test.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(promtool, "test", "rules", file)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool test rules: %v\n%s\ntest file:\n%s", err, out, b)
	}
	return nil
}

// NightlyAlert is the NightlyJobDidNotRun alert of
// docs/alerts/claimctl.rules.yml for claim nightly, value being the
// humanized time since the last success.
func NightlyAlert(value string) []Alert {
	return []Alert{{
		ExpLabels: map[string]string{"claim": "nightly", "severity": "warning"},
		ExpAnnotations: map[string]string{
			"summary": "nightly has not run successfully on any host for 26 hours",
			"description": "No host has reported a successful run of claim nightly for " + value + ". " +
				"Look at claimctl_last_run_outcome on the hosts: all skipping means another holder kept the claim " +
				"(claimctl status nightly); failed means the job exits non-zero.",
		},
	}}
}

// HeldAlert is the ClaimHeldTooLong alert of docs/alerts/claimctl.rules.yml
// for claim nightly held on instance.
func HeldAlert(instance string) []Alert {
	return []Alert{{
		ExpLabels: map[string]string{"claim": "nightly", "instance": instance, "job": "node", "severity": "warning"},
		ExpAnnotations: map[string]string{
			"summary": "nightly has been held on " + instance + " for more than an hour",
			"description": "claimctl on " + instance + " took claim nightly more than an hour ago and has not reported " +
				"the end of the run. The job may be stuck, or claimctl was killed and its metrics file still says " +
				"holding: check the host and claimctl status nightly.",
		},
	}}
}
