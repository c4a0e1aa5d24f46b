package runmetrics_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimctl/claimctl/internal/promtooltest"
	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// rulesFile is the alerting rules file the recipe tells users to install.
const rulesFile = "../../docs/alerts/claimctl.rules.yml"

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
	promtool := os.Getenv(promtooltest.Env)
	if promtool == "" {
		t.Skip(promtooltest.SkipHint)
	}
	type want struct{ nightly, held []promtooltest.Alert }
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
		want: want{nightly: promtooltest.NightlyAlert("1d 3h 0m 0s"), held: promtooltest.HeldAlert("host-b:9100")},
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
		want: want{nightly: promtooltest.NightlyAlert("1d 2h 10m 0s"), held: promtooltest.HeldAlert("host-b:9100")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var series []promtooltest.Series
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
				s, err := promtooltest.Scrape(hostDir, host+":9100", int(now/time.Minute), nil)
				if err != nil {
					t.Fatal(err)
				}
				series = append(series, s...)
			}
			err := promtooltest.Run(promtool, rulesFile, dir, series, []promtooltest.Expect{
				{EvalTime: now, Alertname: "NightlyJobDidNotRun", Alerts: tt.want.nightly},
				{EvalTime: now, Alertname: "ClaimHeldTooLong", Alerts: tt.want.held},
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
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
