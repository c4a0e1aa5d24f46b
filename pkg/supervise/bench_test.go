//go:build linux

package supervise

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkStart measures what the guardian adds to `claimctl run`: ns/op
// and µs/start-median time Start alone (holding the claim until the child
// runs); µs/run-median times Start through Wait for /bin/true, which adds
// the guardian's stand-down and reaping at the end.
func BenchmarkStart(b *testing.B) {
	for _, bc := range []struct {
		name       string
		noGuardian bool
	}{{"guardian", false}, {"no-guardian", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var start, run []time.Duration
			for b.Loop() {
				t0 := time.Now()
				c, err := Start(Spec{Path: "/bin/true", NoGuardian: bc.noGuardian})
				start = append(start, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if s := c.Wait(); s != (Status{}) {
					b.Fatalf("/bin/true: %v", s)
				}
				run = append(run, time.Since(t0))
				b.StartTimer()
			}
			b.ReportMetric(median(start), "µs/start-median")
			b.ReportMetric(median(run), "µs/run-median")
		})
	}
}

func median(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2]) / float64(time.Microsecond)
}
