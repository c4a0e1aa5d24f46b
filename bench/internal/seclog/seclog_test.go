package seclog

import (
	"testing"
	"time"
)

func TestAnalyzeCountsGapsAndOverlaps(t *testing.T) {
	for _, tc := range []struct {
		name     string
		log      string
		overlaps int
		gaps     []time.Duration
		rise     bool
	}{
		{
			name: "serial",
			log: "start 100 1 a 5\nend 200 1 a\n" +
				"start 250 2 b 7\nend 300 2 b\n" +
				"start 310 3 c 9\nend 400 3 c\n",
			gaps: []time.Duration{50, 10},
			rise: true,
		},
		{
			name: "overlap and falling token",
			log: "start 100 1 a 5\nstart 150 2 b 4\nend 200 1 a\nend 250 2 b\n" +
				"start 260 3 c 8\nend 300 3 c\n",
			overlaps: 1,
			gaps:     []time.Duration{10},
		},
		{
			name:     "an open section overlaps everything after it",
			log:      "start 100 1 a 1\nstart 500 2 b 2\nend 600 2 b\n",
			overlaps: 1,
			rise:     true,
		},
		{
			name: "non-numeric tokens do not rise",
			log:  "start 100 1 a -\nend 200 1 a\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ivs, err := Parse(tc.log)
			if err != nil {
				t.Fatal(err)
			}
			a := Analyze(ivs)
			if a.Overlaps != tc.overlaps || a.TokensRise != tc.rise || len(a.Gaps) != len(tc.gaps) {
				t.Fatalf("got %+v; want overlaps %d, rise %v, gaps %v", a, tc.overlaps, tc.rise, tc.gaps)
			}
			for i := range tc.gaps {
				if a.Gaps[i] != tc.gaps[i] {
					t.Fatalf("gaps %v, want %v", a.Gaps, tc.gaps)
				}
			}
		})
	}
}

func TestParseRejectsTornLines(t *testing.T) {
	for _, log := range []string{"start 1 2\n", "end 5 1 a\n", "start x 1 a 1\n", "stop 1 1 a\n"} {
		if _, err := Parse(log); err == nil {
			t.Errorf("Parse(%q) succeeded", log)
		}
	}
}

func TestThroughput(t *testing.T) {
	ivs, _ := Parse("start 0 1 a 1\nend 500000000 1 a\nstart 500000000 2 b 2\nend 1000000000 2 b\n")
	if a := Analyze(ivs); a.PerSecond != 2 || a.Span != time.Second {
		t.Fatalf("got %+v, want 2/s over 1s", a)
	}
}
