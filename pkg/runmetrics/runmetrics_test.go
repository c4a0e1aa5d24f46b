package runmetrics_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// families is a parsed textfile: name -> claim (+ "/" + outcome for the
// outcome gauge) -> value.
type families map[string]map[string]float64

// parse reads file as node_exporter would, with the strict (legacy) name
// rules older node_exporters apply, and fails the test on anything the
// textfile collector would refuse or that the package promises not to write:
// timestamps, other types than gauge, a missing HELP, a series without a
// claim label.
func parse(t *testing.T, file string) families {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", file, err)
	}
	out := families{}
	for name, mf := range mfs {
		if mf.GetType().String() != "GAUGE" {
			t.Errorf("%s is a %s, want a gauge", name, mf.GetType())
		}
		if len(mf.GetHelp()) < 20 {
			t.Errorf("%s has HELP %q; say what it is", name, mf.GetHelp())
		}
		out[name] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			if m.TimestampMs != nil {
				t.Errorf("%s has a timestamp; node_exporter refuses those", name)
			}
			var claim, outcome string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "claim":
					claim = lp.GetValue()
				case "outcome":
					outcome = lp.GetValue()
				default:
					t.Errorf("%s has an unexpected label %s", name, lp.GetName())
				}
			}
			if claim == "" {
				t.Errorf("%s has a series without a claim label", name)
			}
			key := claim
			if outcome != "" {
				key += "/" + outcome
			}
			out[name][key] = m.GetGauge().GetValue()
		}
	}
	return out
}

var metricNames = []string{
	"claimctl_hold_start_timestamp_seconds",
	"claimctl_holding",
	"claimctl_last_run_exit_code",
	"claimctl_last_run_fencing_token",
	"claimctl_last_run_hold_seconds",
	"claimctl_last_run_outcome",
	"claimctl_last_run_timestamp_seconds",
	"claimctl_last_run_wait_seconds",
	"claimctl_last_success_timestamp_seconds",
}

// t0 is a fixed point in time, with a fraction of a second so that rounding
// shows.
var t0 = time.Date(2026, 12, 1, 2, 15, 0, 250_000_000, time.UTC)

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func write(t *testing.T, path string, r runmetrics.Report) families {
	t.Helper()
	if err := runmetrics.Write(path, r); err != nil {
		t.Fatalf("Write(%q, %+v): %v", path, r, err)
	}
	return parse(t, runmetrics.FileFor(path, r.Claim))
}

func TestWriteEveryOutcome(t *testing.T) {
	start, got, end := t0, t0.Add(90*time.Second), t0.Add(90*time.Second+10*time.Minute)
	held := func(o runmetrics.Outcome, code int) runmetrics.Report {
		return runmetrics.Report{Claim: "nightly", Outcome: o, Started: start, Acquired: got, Ended: end, ExitCode: code, FencingToken: 7}
	}
	waited := func(o runmetrics.Outcome, code int) runmetrics.Report {
		return runmetrics.Report{Claim: "nightly", Outcome: o, Started: start, Ended: got, ExitCode: code}
	}
	type want struct{ ts, wait, hold, code, holding, holdStart, token, success float64 }
	heldWant := func(code float64, success float64) want {
		return want{unix(end), 90, 600, code, 0, unix(got), 7, success}
	}
	waitedWant := func(code float64) want { return want{unix(got), 90, 0, code, 0, 0, 0, 0} }
	tests := []struct {
		report runmetrics.Report
		want   want
	}{
		{held(runmetrics.OK, 0), heldWant(0, unix(end))},
		{held(runmetrics.Failed, 3), heldWant(3, 0)},
		{waited(runmetrics.Skipped, 0), waitedWant(0)},
		{waited(runmetrics.TimedOut, 75), waitedWant(75)},
		{held(runmetrics.TimedOut, 124), heldWant(124, 0)}, // --max-runtime
		{held(runmetrics.Lost, 70), heldWant(70, 0)},
		{held(runmetrics.Interrupted, 130), heldWant(130, 0)},
		{waited(runmetrics.Interrupted, 130), waitedWant(130)},
		{waited(runmetrics.Error, 69), waitedWant(69)},
		{runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Holding, Started: start, Acquired: got, FencingToken: 7},
			want{unix(start), 90, 0, 0, 1, unix(got), 7, 0}},
	}
	seen := map[runmetrics.Outcome]bool{}
	for _, tt := range tests {
		seen[tt.report.Outcome] = true
		t.Run(string(tt.report.Outcome), func(t *testing.T) {
			dir := t.TempDir()
			fams := write(t, dir, tt.report)
			var names []string
			for name := range fams {
				names = append(names, name)
			}
			slices.Sort(names)
			if !slices.Equal(names, metricNames) {
				t.Fatalf("metrics %v, want %v", names, metricNames)
			}
			check := func(name string, want float64) {
				t.Helper()
				if len(fams[name]) != 1 {
					t.Errorf("%s: %d series, want 1: %v", name, len(fams[name]), fams[name])
				}
				if got := fams[name]["nightly"]; got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			w := tt.want
			check("claimctl_last_run_timestamp_seconds", w.ts)
			check("claimctl_last_run_wait_seconds", w.wait)
			check("claimctl_last_run_hold_seconds", w.hold)
			check("claimctl_last_run_exit_code", w.code)
			check("claimctl_holding", w.holding)
			check("claimctl_hold_start_timestamp_seconds", w.holdStart)
			check("claimctl_last_run_fencing_token", w.token)
			check("claimctl_last_success_timestamp_seconds", w.success)

			// One-hot: a series for every outcome, 1 for this one only.
			outcomes := fams["claimctl_last_run_outcome"]
			if len(outcomes) != len(runmetrics.Outcomes()) {
				t.Errorf("%d outcome series, want %d: %v", len(outcomes), len(runmetrics.Outcomes()), outcomes)
			}
			for _, o := range runmetrics.Outcomes() {
				want := 0.0
				if o == tt.report.Outcome {
					want = 1
				}
				if got, ok := outcomes["nightly/"+string(o)]; !ok || got != want {
					t.Errorf("outcome %s = %v (present %v), want %v", o, got, ok, want)
				}
			}
		})
	}
	for _, o := range runmetrics.Outcomes() {
		if !seen[o] {
			t.Errorf("outcome %s is not tested", o)
		}
	}
}

func TestOutcomesAreFixed(t *testing.T) {
	want := []runmetrics.Outcome{"ok", "failed", "skipped", "timed_out", "lost", "interrupted", "error", "holding"}
	if got := runmetrics.Outcomes(); !slices.Equal(got, want) {
		t.Fatalf("Outcomes() = %v, want %v", got, want)
	}
	runmetrics.Outcomes()[0] = "changed"
	if runmetrics.Outcomes()[0] != "ok" {
		t.Fatal("a caller changed the package's list of outcomes")
	}
}

// TestLastSuccessSurvivesLaterRuns is the cron fleet: after an ok run, the
// host goes on reporting that success through skipped, failed and other
// runs, until the next ok run replaces it.
func TestLastSuccessSurvivesLaterRuns(t *testing.T) {
	dir := t.TempDir()
	ok := func(at time.Time) runmetrics.Report {
		return runmetrics.Report{Claim: "nightly", Outcome: runmetrics.OK, Started: at, Acquired: at, Ended: at.Add(time.Minute), FencingToken: 1}
	}
	success := func(f families) float64 { return f["claimctl_last_success_timestamp_seconds"]["nightly"] }

	fams := write(t, dir, runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Skipped, Started: t0, Ended: t0})
	if got := success(fams); got != 0 {
		t.Fatalf("before any success: last success %v, want 0", got)
	}
	first := t0.Add(24 * time.Hour)
	write(t, dir, ok(first))
	later := []runmetrics.Report{
		{Claim: "nightly", Outcome: runmetrics.Skipped, Started: first.Add(24 * time.Hour), Ended: first.Add(24 * time.Hour)},
		{Claim: "nightly", Outcome: runmetrics.Holding, Started: first.Add(48 * time.Hour), Acquired: first.Add(48 * time.Hour)},
		{Claim: "nightly", Outcome: runmetrics.Failed, Started: first.Add(48 * time.Hour), Acquired: first.Add(48 * time.Hour), Ended: first.Add(49 * time.Hour), ExitCode: 1},
		{Claim: "nightly", Outcome: runmetrics.Error, Started: first.Add(72 * time.Hour), Ended: first.Add(72 * time.Hour), ExitCode: 69},
	}
	for i := 0; i < 30; i++ { // many runs: the value must not drift by rounding
		later = append(later, runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Skipped, Started: t0.Add(time.Duration(100+i) * time.Hour), Ended: t0.Add(time.Duration(100+i) * time.Hour)})
	}
	for _, r := range later {
		if got, want := success(write(t, dir, r)), unix(first.Add(time.Minute)); got != want {
			t.Fatalf("after a %s run: last success %v, want %v (the ok run's end)", r.Outcome, got, want)
		}
	}
	second := first.Add(200 * time.Hour)
	if got, want := success(write(t, dir, ok(second))), unix(second.Add(time.Minute)); got != want {
		t.Fatalf("a new ok run: last success %v, want %v", got, want)
	}
}

func TestMalformedOrForeignPreviousFile(t *testing.T) {
	skipped := runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Skipped, Started: t0, Ended: t0}
	for name, content := range map[string]string{
		"garbage":   "this is not a metrics file {\n",
		"truncated": "# HELP claimctl_last_success_timestamp_seconds x\n# TYPE claimctl_last_success_timestamp_seconds gauge\nclaimctl_last_success_timestamp_seconds{claim=\"nigh",
		"binary":    "\x00\x01\x02\xff",
		"negative":  "claimctl_last_success_timestamp_seconds{claim=\"nightly\"} -5\n",
		"NaN":       "claimctl_last_success_timestamp_seconds{claim=\"nightly\"} NaN\n",
		// A file written for another claim (the same .prom path given to two claims).
		"other claim": "claimctl_last_success_timestamp_seconds{claim=\"weekly\"} 1.7e+09\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "nightly.prom")
			if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			fams := write(t, file, skipped)
			if got := fams["claimctl_last_success_timestamp_seconds"]; len(got) != 1 || got["nightly"] != 0 {
				t.Fatalf("last success %v, want only nightly=0 (start afresh)", got)
			}
			if fams["claimctl_last_run_outcome"]["nightly/skipped"] != 1 {
				t.Fatalf("the new run was not written: %v", fams["claimctl_last_run_outcome"])
			}
		})
	}
}

func TestFileForNames(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ claim, base string }{
		{"nightly", "claimctl_nightly.prom"},
		{"Backup-db_2.x", "claimctl_Backup-db_2.x.prom"},
		{"a/b", "claimctl_a%2Fb.prom"},
		{"a%2Fb", "claimctl_a%252Fb.prom"}, // not the file of "a/b"
		{"with space", "claimctl_with%20space.prom"},
		{"ünï", "claimctl_%C3%BCn%C3%AF.prom"},
		{"x:y@z", "claimctl_x%3Ay%40z.prom"},
		{"..", "claimctl_...prom"},
		{`back\slash`, "claimctl_back%5Cslash.prom"},
		{"*.prom", "claimctl_%2A.prom.prom"},
	}
	for _, tt := range tests {
		for _, path := range []string{dir, dir + "/"} {
			got := runmetrics.FileFor(path, tt.claim)
			if filepath.Dir(got) != dir || filepath.Base(got) != tt.base {
				t.Errorf("FileFor(%q, %q) = %q, want %s/%s", path, tt.claim, got, dir, tt.base)
			}
		}
		escaped := strings.TrimSuffix(strings.TrimPrefix(tt.base, "claimctl_"), ".prom")
		if back, err := url.PathUnescape(escaped); err != nil || back != tt.claim {
			t.Errorf("%s does not unescape to %q: %q, %v", tt.base, tt.claim, back, err)
		}
	}
	// A directory that does not exist yet, given with a trailing '/'.
	if got, want := runmetrics.FileFor("/nonexistent/textfile/", "a/b"), "/nonexistent/textfile/claimctl_a%2Fb.prom"; got != want {
		t.Errorf("FileFor on a missing directory = %q, want %q", got, want)
	}
	// Any other path is the file.
	for _, path := range []string{filepath.Join(dir, "jobs.prom"), "/nonexistent/x.prom", "relative.prom"} {
		if got := runmetrics.FileFor(path, "a/b"); got != path {
			t.Errorf("FileFor(%q) = %q, want the path itself", path, got)
		}
	}
}

func TestFileForLongNames(t *testing.T) {
	dir := t.TempDir()
	plain := strings.Repeat("n", 200) // the longest claim name
	if got, want := filepath.Base(runmetrics.FileFor(dir, plain)), "claimctl_"+plain+".prom"; got != want {
		t.Errorf("a 200-byte plain name was cut: %s", got)
	}
	// Two long names that escape to the same first 200 bytes.
	a, b := strings.Repeat("ü", 100)+"a", strings.Repeat("ü", 100)+"b"
	fa, fb := runmetrics.FileFor(dir, a), runmetrics.FileFor(dir, b)
	if fa == fb {
		t.Fatalf("two long names share the file %s", fa)
	}
	for _, f := range []string{fa, fb} {
		base := filepath.Base(f)
		// The temporary file adds up to 10 digits; file names stop at 255 bytes.
		if len(base)+10 > 255 || !strings.Contains(base, "~") || !strings.HasSuffix(base, ".prom") {
			t.Errorf("long name's file %s (%d bytes)", base, len(base))
		}
	}
	// And they can really be written, side by side.
	for _, claim := range []string{a, b} {
		if got := write(t, dir, runmetrics.Report{Claim: claim, Outcome: runmetrics.Skipped, Started: t0, Ended: t0}); got["claimctl_holding"][claim] != 0 || len(got["claimctl_holding"]) != 1 {
			t.Errorf("file of a long name: %v", got["claimctl_holding"])
		}
	}
}

func TestTwoClaimsInOneDirectory(t *testing.T) {
	dir := t.TempDir()
	claims := []string{"a", "b", "a/b", "a%2Fb"}
	for i, claim := range claims {
		write(t, dir+"/", runmetrics.Report{Claim: claim, Outcome: runmetrics.OK, Started: t0, Acquired: t0,
			Ended: t0.Add(time.Duration(i+1) * time.Minute), FencingToken: int64(i + 1)})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(claims) {
		t.Fatalf("%d files for %d claims: %v", len(entries), len(claims), entries)
	}
	for i, claim := range claims {
		fams := parse(t, runmetrics.FileFor(dir, claim))
		tokens := fams["claimctl_last_run_fencing_token"]
		if len(tokens) != 1 || tokens[claim] != float64(i+1) {
			t.Errorf("file of %q has tokens %v, want only %q=%d", claim, tokens, claim, i+1)
		}
	}
}

// TestWriteIsAtomic reads the file while it is being rewritten: every read
// must see a whole file, and nothing but the file is left in the directory.
func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	file := runmetrics.FileFor(dir, "nightly")
	report := func(i int) runmetrics.Report {
		at := t0.Add(time.Duration(i) * time.Second)
		return runmetrics.Report{Claim: "nightly", Outcome: runmetrics.OK, Started: at, Acquired: at, Ended: at, FencingToken: int64(i)}
	}
	write(t, dir, report(0))

	const writes = 300
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 1; i <= writes; i++ {
			if err := runmetrics.Write(dir, report(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	reads := 0
	for stop := false; !stop; reads++ {
		select {
		case <-done:
			stop = true
		default:
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := parser.TextToMetricFamilies(f)
		f.Close()
		// A partial file would not parse, or lack the last families.
		if err != nil || len(mfs) != len(metricNames) || len(mfs["claimctl_last_run_outcome"].GetMetric()) != len(runmetrics.Outcomes()) {
			t.Fatalf("read %d saw a partial file: %d families, %v", reads, len(mfs), err)
		}
	}
	wg.Wait()
	fams := parse(t, file)
	if got := fams["claimctl_last_run_fencing_token"]["nightly"]; got != writes {
		t.Fatalf("after the writes the token is %v, want %d", got, writes)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != filepath.Base(file) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the directory has %v, want only %s (no temporary files)", names, filepath.Base(file))
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Errorf("file mode %v, want 0644 so node_exporter can read it", fi.Mode().Perm())
	}
	t.Logf("%d reads during %d writes", reads, writes)
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.prom")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := []string{dir, dir + "/", filepath.Join(dir, "jobs.prom"), file}
	for _, path := range good {
		if err := runmetrics.Validate(path); err != nil {
			t.Errorf("Validate(%q): %v", path, err)
		}
	}
	bad := []struct{ path, want string }{
		{"", "path is empty"},
		{filepath.Join(dir, "jobs.txt"), "does not end in .prom, so node_exporter's textfile collector would ignore it; name it " + filepath.Join(dir, "jobs.prom")},
		{filepath.Join(dir, "jobs"), "name it " + filepath.Join(dir, "jobs.prom")},
		{filepath.Join(dir, "jobs.prom.tmp"), "does not end in .prom"},
		{filepath.Join(dir, "missing") + "/", "metrics directory " + filepath.Join(dir, "missing") + " does not exist; create it"},
		{filepath.Join(dir, "missing", "jobs.prom"), "metrics directory " + filepath.Join(dir, "missing") + " does not exist"},
		{file + "/", "is not a directory"},
		{filepath.Join(file, "jobs.prom"), "is not a directory"},
	}
	for _, tt := range bad {
		err := runmetrics.Validate(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%q) = %v, want an error containing %q", tt.path, err, tt.want)
		}
		r := runmetrics.Report{Claim: "nightly", Outcome: runmetrics.Skipped, Started: t0, Ended: t0}
		if werr := runmetrics.Write(tt.path, r); werr == nil || err == nil || werr.Error() != err.Error() {
			t.Errorf("Write(%q) = %v, want Validate's error %v", tt.path, werr, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Validate left files behind: %v", entries)
	}
}

func TestValidateUnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write to a read-only directory")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if err := runmetrics.Validate(dir + "/"); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("Validate of a read-only directory: %v", err)
	}
}

func TestWriteRefusesIncompleteReports(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		r    runmetrics.Report
		want string
	}{
		{runmetrics.Report{Outcome: runmetrics.Skipped, Started: t0, Ended: t0}, "no claim name"},
		{runmetrics.Report{Claim: "c", Outcome: "done", Started: t0, Ended: t0}, `unknown outcome "done"`},
		{runmetrics.Report{Claim: "c", Outcome: runmetrics.Skipped, Ended: t0}, "without a start time"},
		{runmetrics.Report{Claim: "c", Outcome: runmetrics.OK, Started: t0, Ended: t0}, "without the time the claim was taken"},
		{runmetrics.Report{Claim: "c", Outcome: runmetrics.Holding, Started: t0}, "without the time the claim was taken"},
		{runmetrics.Report{Claim: "c", Outcome: runmetrics.Skipped, Started: t0}, "without an end time"},
		{runmetrics.Report{Claim: "c\xff", Outcome: runmetrics.Skipped, Started: t0, Ended: t0}, "UTF-8"},
	}
	for _, tt := range tests {
		err := runmetrics.Write(dir, tt.r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Write(%+v) = %v, want an error containing %q", tt.r, err, tt.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused reports left files: %v", entries)
	}
}
