// Package seclog reads the log the section helper writes and checks what it
// shows: how many critical sections ran, whether any two overlapped, the
// handoff gaps between them, and the throughput.
package seclog

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Interval is one critical section: the helper's start and end on
// CLOCK_MONOTONIC (nanoseconds). End is 0 when no end was logged (the
// helper was killed, or is still running).
type Interval struct {
	Start, End int64
	Pid        int
	Label      string
	Token      string
}

// Open reports whether the section has no logged end.
func (iv Interval) Open() bool { return iv.End == 0 }

// Read parses a section log. Lines it cannot parse are errors: the helper
// writes each line in one append, so a torn line means something is wrong.
func Read(path string) ([]Interval, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(bufio.NewScanner(f), path)
}

// Parse parses log text (for tests).
func Parse(text string) ([]Interval, error) {
	return parse(bufio.NewScanner(strings.NewReader(text)), "log")
}

func parse(sc *bufio.Scanner, name string) ([]Interval, error) {
	type key struct {
		pid   int
		label string
	}
	var out []Interval
	open := map[key]int{}
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		bad := func() error { return fmt.Errorf("%s:%d: malformed line %q", name, n, sc.Text()) }
		if len(f) < 4 {
			return nil, bad()
		}
		ns, err1 := strconv.ParseInt(f[1], 10, 64)
		pid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, bad()
		}
		k := key{pid, f[3]}
		switch {
		case f[0] == "start" && len(f) == 5:
			open[k] = len(out)
			out = append(out, Interval{Start: ns, Pid: pid, Label: f[3], Token: f[4]})
		case f[0] == "end" && len(f) == 4:
			i, ok := open[k]
			if !ok {
				return nil, fmt.Errorf("%s:%d: end without start for pid %d %s", name, n, pid, f[3])
			}
			out[i].End = ns
			delete(open, k)
		default:
			return nil, bad()
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}

// Find returns the first interval with label, and whether there is one.
func Find(ivs []Interval, label string) (Interval, bool) {
	for _, iv := range ivs {
		if iv.Label == label {
			return iv, true
		}
	}
	return Interval{}, false
}

// Analysis is what a mutex's intervals show.
type Analysis struct {
	Sections int
	// Overlaps counts sections that started before an earlier one ended
	// (an open section counts as never ending).
	Overlaps int
	// Gaps are next start - previous end, in start order, for sections
	// that did not overlap.
	Gaps []time.Duration
	// Span is first start to last end.
	Span time.Duration
	// PerSecond is Sections / Span.
	PerSecond float64
	// TokensRise is true when every token parses as a number and they
	// strictly rise in start order.
	TokensRise bool
}

// Analyze checks intervals (sorted by start) for a mutex.
func Analyze(ivs []Interval) Analysis {
	a := Analysis{Sections: len(ivs), TokensRise: len(ivs) > 0}
	if len(ivs) == 0 {
		return a
	}
	var maxEnd int64 // latest end so far; -1 once a section never ended
	var last int64 = -1 << 62
	lastEnd := ivs[0].Start
	for i, iv := range ivs {
		if i > 0 {
			if maxEnd < 0 || iv.Start < maxEnd {
				a.Overlaps++
			} else {
				a.Gaps = append(a.Gaps, time.Duration(iv.Start-maxEnd))
			}
		}
		switch {
		case iv.Open():
			maxEnd = -1
		case maxEnd >= 0 && iv.End > maxEnd:
			maxEnd = iv.End
		}
		if iv.End > lastEnd {
			lastEnd = iv.End
		}
		tok, err := strconv.ParseInt(iv.Token, 10, 64)
		if err != nil || tok <= last {
			a.TokensRise = false
		}
		last = tok
	}
	a.Span = time.Duration(lastEnd - ivs[0].Start)
	if a.Span > 0 {
		a.PerSecond = float64(a.Sections) / a.Span.Seconds()
	}
	return a
}
