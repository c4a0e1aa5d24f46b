// Package stats summarizes samples: quantiles and the ratio of two tools'
// figures.
package stats

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Quantile returns the q-quantile (0..1) of xs by linear interpolation
// between closest ranks; NaN for no samples. xs need not be sorted.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// Durations converts durations to milliseconds, the unit of every table.
func Durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// Summary is the median and 90th percentile of a sample.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// MarshalJSON writes the figures of an empty sample (NaN) as null.
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		N      int      `json:"n"`
		Median *float64 `json:"median"`
		P90    *float64 `json:"p90"`
		Min    *float64 `json:"min"`
		Max    *float64 `json:"max"`
	}{s.N, Nullable(s.Median), Nullable(s.P90), Nullable(s.Min), Nullable(s.Max)})
}

// Nullable is x, or nil for NaN and infinities, which JSON cannot carry.
func Nullable(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// Summarize returns xs's summary.
func Summarize(xs []float64) Summary {
	return Summary{N: len(xs), Median: Quantile(xs, 0.5), P90: Quantile(xs, 0.9), Min: Quantile(xs, 0), Max: Quantile(xs, 1)}
}

// Ratio is a/b, NaN when b is 0 or either is NaN.
func Ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return a / b
}
