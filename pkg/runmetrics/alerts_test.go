package runmetrics_test

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// rulesFile is the alerting rules file the recipe tells users to install.
const rulesFile = "../../docs/alerts/claimctl.rules.yml"

// The promtool test file, written as JSON (which YAML parsers read as YAML)
// so that no YAML is written by hand.
type promtoolFile struct {
	RuleFiles          []string        `json:"rule_files"`
	EvaluationInterval string          `json:"evaluation_interval"`
	Tests              []promtoolGroup `json:"tests"`
}

type promtoolGroup struct {
	Interval       string          `json:"interval"`
	InputSeries    []inputSeries   `json:"input_series"`
	AlertRuleTests []alertRuleTest `json:"alert_rule_test"`
}

type inputSeries struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

type alertRuleTest struct {
	EvalTime  string     `json:"eval_time"`
	Alertname string     `json:"alertname"`
	ExpAlerts []expAlert `json:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `json:"exp_labels"`
	ExpAnnotations map[string]string `json:"exp_annotations"`
}

// now is the evaluation time of every scenario. promtool's clock starts at
// the Unix epoch, so the reports are written in 1970.
const now = 30 * time.Hour

func at(ago time.Duration) time.Time { return time.Unix(0, 0).Add(now - ago).UTC() }

// okRun is a run that took the claim at once and whose job took 10 minutes,
// ending ago before now.
func okRun(ago time.Duration) runmetrics.Report {
	return runmetrics.Report{Claim: "nightly", Outcome: runmetrics.OK, Started: at(ago + 10*time.Minute),
		Acquired: at(ago + 10*time.Minute), Ended: at(ago), FencingToken: 3}
}

func skippedRun(claim string, ago time.Duration) runmetrics.Report {
	return runmetrics.Report{Claim: claim, Outcome: runmetrics.Skipped, Started: at(ago), Ended: at(ago)}
}

// holdingRun is the file a run leaves when it took the claim ago before now
// and has not ended, or was SIGKILLed since.
func holdingRun(ago time.Duration) runmetrics.Report {
	return runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Holding, Started: at(ago + time.Second),
		Acquired: at(ago), FencingToken: 4}
}

func nightlyAlert(value string) []expAlert {
	return []expAlert{{
		ExpLabels: map[string]string{"claim": "nightly", "severity": "warning"},
		ExpAnnotations: map[string]string{
			"summary": "nightly has not run successfully on any host for 26 hours",
			"description": "No host has reported a successful run of claim nightly for " + value + ". " +
				"Look at claimctl_last_run_outcome on the hosts: all skipping means another holder kept the claim " +
				"(claimctl status nightly); failed means the job exits non-zero.",
		},
	}}
}

func heldAlert(instance string) []expAlert {
	return []expAlert{{
		ExpLabels: map[string]string{"claim": "nightly", "instance": instance, "job": "node", "severity": "warning"},
		ExpAnnotations: map[string]string{
			"summary": "nightly has been held on " + instance + " for more than an hour",
			"description": "claimctl on " + instance + " took claim nightly more than an hour ago and has not reported " +
				"the end of the run. The job may be stuck, or claimctl was killed and its metrics file still says " +
				"holding: check the host and claimctl status nightly.",
		},
	}}
}

// TestAlertRules writes the files of a few fleets with runmetrics.Write, feeds
// their samples to promtool as a scrape of each host's node_exporter would
// see them, and checks which of the rules in docs/alerts/claimctl.rules.yml
// fire at now.
//
// The cases sit on both sides of each threshold, so that a change of the
// rules shows: 25h50m and 26h10m around the 26 hours of NightlyJobDidNotRun,
// and a hold of 62 minutes (over the hour, but for less than the rule's
// `for: 5m`) against holds of 66 minutes and 2 hours for ClaimHeldTooLong.
// The healthy fleet has a host that never succeeded (only the max across
// hosts keeps it quiet) and another claim with an old success (the rule is
// for the nightly claim only).
func TestAlertRules(t *testing.T) {
	promtool := os.Getenv("CLAIMCTL_PROMTOOL")
	if promtool == "" {
		t.Skip("CLAIMCTL_PROMTOOL is not set; to test the alert rules run: CLAIMCTL_PROMTOOL=$(scripts/promtool.sh) go test -run TestAlertRules ./pkg/runmetrics/")
	}
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ nightly, held []expAlert }
	tests := []struct {
		name  string
		hosts map[string][]runmetrics.Report // host -> its runs, in order
		want  want
	}{{
		// host-a last ran the job 27 hours ago and has skipped since, because
		// host-b took the claim 2 hours ago and is stuck (or was killed).
		name: "stuck fleet",
		hosts: map[string][]runmetrics.Report{
			"host-a": {okRun(27 * time.Hour), skippedRun("nightly", 3*time.Hour)},
			"host-b": {skippedRun("nightly", 27*time.Hour+10*time.Minute), holdingRun(2 * time.Hour)},
		},
		want: want{nightly: nightlyAlert("1d 3h 0m 0s"), held: heldAlert("host-b:9100")},
	}, {
		name: "healthy fleet",
		hosts: map[string][]runmetrics.Report{
			"host-a": {okRun(27 * time.Hour), okRun(3 * time.Hour)},
			"host-b": {skippedRun("nightly", 27*time.Hour+10*time.Minute), skippedRun("nightly", 3*time.Hour+10*time.Minute), holdingRun(10 * time.Minute)},
			"host-c": {{Claim: "weekly", Outcome: runmetrics.OK, Started: at(75 * time.Hour), Acquired: at(75 * time.Hour), Ended: at(74 * time.Hour)}},
		},
	}, {
		name: "just inside",
		hosts: map[string][]runmetrics.Report{
			"host-a": {okRun(25*time.Hour + 50*time.Minute)},
			"host-b": {holdingRun(62 * time.Minute)},
		},
	}, {
		name: "just outside",
		hosts: map[string][]runmetrics.Report{
			"host-a": {okRun(26*time.Hour + 10*time.Minute)},
			"host-b": {holdingRun(66 * time.Minute)},
		},
		want: want{nightly: nightlyAlert("1d 2h 10m 0s"), held: heldAlert("host-b:9100")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var series []inputSeries
			for host, runs := range tt.hosts {
				hostDir := filepath.Join(dir, host) + "/"
				if err := os.Mkdir(hostDir, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, r := range runs {
					if err := runmetrics.Write(hostDir, r); err != nil {
						t.Fatal(err)
					}
				}
				series = append(series, scrape(t, hostDir, host+":9100")...)
			}
			slices.SortFunc(series, func(a, b inputSeries) int { return strings.Compare(a.Series, b.Series) })
			if tt.want.nightly == nil {
				tt.want.nightly = []expAlert{}
			}
			if tt.want.held == nil {
				tt.want.held = []expAlert{}
			}
			test := promtoolFile{
				RuleFiles:          []string{rules},
				EvaluationInterval: "1m",
				Tests: []promtoolGroup{{
					Interval:    "1m",
					InputSeries: series,
					AlertRuleTests: []alertRuleTest{
						{EvalTime: model.Duration(now).String(), Alertname: "NightlyJobDidNotRun", ExpAlerts: tt.want.nightly},
						{EvalTime: model.Duration(now).String(), Alertname: "ClaimHeldTooLong", ExpAlerts: tt.want.held},
					},
				}},
			}
			b, err := json.MarshalIndent(test, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "test.yml")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(promtool, "test", "rules", file)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("promtool test rules: %v\n%s\ntest file:\n%s", err, out, b)
			}
		})
	}
}

// scrape returns the samples of the .prom files in dir as promtool input
// series, with the instance and job labels a scrape of node_exporter adds,
// each constant from promtool's time 0 to now: a textfile does not change
// until the next run rewrites it.
func scrape(t *testing.T, dir, instance string) []inputSeries {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.prom"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .prom file in %s: %v", dir, err)
	}
	var out []inputSeries
	steps := int(now / time.Minute)
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := parser.TextToMetricFamilies(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
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
				v := strconv.FormatFloat(m.GetGauge().GetValue(), 'f', -1, 64)
				out = append(out, inputSeries{
					Series: name + "{" + strings.Join(sel, ",") + "}",
					Values: v + "x" + strconv.Itoa(steps),
				})
			}
		}
	}
	return out
}

// TestRecipeShowsTheRules keeps the rules printed in docs/recipes.md the
// same as the file the test above runs, so that what users copy is tested.
func TestRecipeShowsTheRules(t *testing.T) {
	want, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../../docs/recipes.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got strings.Builder
	marked, in, found := false, false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "<!-- recipe: alert-rules -->":
			marked = true
		case marked && !in && strings.HasPrefix(line, "```"):
			in = true
		case in && line == "```":
			in, marked, found = false, false, true
		case in:
			got.WriteString(line + "\n")
		}
	}
	if !found {
		t.Fatal("docs/recipes.md has no block marked <!-- recipe: alert-rules -->")
	}
	if got.String() != string(want) {
		t.Fatalf("the rules in docs/recipes.md differ from %s; paste the file into the recipe.\nrecipe:\n%s", rulesFile, got.String())
	}
	for _, flag := range []string{"--metrics-file /var/lib/node_exporter/textfile/", "--collector.textfile.directory"} {
		if !strings.Contains(readAll(t, "../../docs/recipes.md"), flag) {
			t.Errorf("docs/recipes.md does not mention %s", flag)
		}
	}
}

func readAll(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
