package cmd

import (
	"fmt"
	"strings"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
)

// waitReporter tells a person at a terminal why claimctl is waiting: who
// holds the claim, since when, and how many are ahead. It stays silent when
// stderr is not a terminal or with -q.
type waitReporter struct {
	f    *Factory
	name string
}

func newWaitReporter(f *Factory, name string) *waitReporter {
	return &waitReporter{f: f, name: name}
}

func (w *waitReporter) report(q claim.QueueState) {
	if w.f.Quiet || !w.f.IO.IsStderrTTY() {
		return
	}
	fmt.Fprintf(w.f.IO.ErrOut, "claimctl: waiting for %s: %s\n", w.name, describeQueue(q, time.Now()))
}

// describeQueue says who holds a claim and where a waiter stands.
func describeQueue(q claim.QueueState, now time.Time) string {
	var parts []string
	if len(q.Holders) > 0 {
		h := q.Holders[0]
		s := "held by " + h.OwnerString()
		if h.Holder != nil {
			since := h.Holder.QueuedAt
			if h.Holder.AcquiredAt != nil {
				since = *h.Holder.AcquiredAt
			}
			if !since.IsZero() {
				s += fmt.Sprintf(" since %s (%s)", since.Local().Format("15:04:05"), ago(since, now))
			}
		}
		if len(q.Holders) > 1 {
			s += fmt.Sprintf(" and %d more", len(q.Holders)-1)
		}
		parts = append(parts, s)
	}
	waiting := q.Ahead - len(q.Holders)
	if waiting < 0 {
		waiting = 0
	}
	parts = append(parts, fmt.Sprintf("%d waiting ahead of us", waiting))
	return strings.Join(parts, "; ")
}
