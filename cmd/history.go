package cmd

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
)

// HistoryOptions are the inputs of `claimctl history`.
type HistoryOptions struct {
	f      *Factory
	cmd    *cobra.Command
	Name   string
	Since  time.Duration
	Output string
}

// NewCmdHistory builds `claimctl history`.
func NewCmdHistory(f *Factory, runF func(*HistoryOptions) error) *cobra.Command {
	opts := &HistoryOptions{f: f}
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List a claim's recent holds, its waits and how each ended, from etcd's revision history",
		Long: `List the holds of claim NAME that etcd's revision history still has: who held it
(owner, host, note), the fencing token, when it was taken and how long the
holder waited, when and how it ended, and the waiters that gave up. It reads
the history and writes nothing; acquire, run and release pay nothing for it.

etcd keeps revisions until it compacts them: the first line says whether the
history is complete, or from which revision (and from when) it is. Reading it
is bounded by --command-timeout as a whole; raise it for a long history.

How a hold ended, and what each word proves:

    forced               removed with 'release --force' by the user shown
                         (its key carried forced_by, which only --force writes)
    released             provably not an expiry: its key was deleted while its
                         lease lived on (a semaphore's release by token), or it
                         ended more than a second before its lease could first
                         have expired (queued_at + TTL, by the holders' clocks)
    released or expired  its lease ended or its key was deleted, and nothing
                         tells which: run's release revokes the lease, which
                         etcd records exactly as an expiry
    gave up              a waiter that left before its turn (-w ran out, -n,
                         a signal, or its lease ended)
    holding, waiting     still there

Nothing in etcd's history can prove an expiry, so "expired" is never shown.

Revisions carry no time. Times come from the contenders' own timestamps
(queued_at, and acquired_at for a hold taken after waiting that lasted a
second or more): "taken" is the holder's own clock, or a span when it left
no acquired_at; an end is "by T" when a later timestamp bounds it, or
"after T" when only an earlier one does, give or take one request's latency
and the clock skew between hosts.`,
		Example: `  claimctl history deploy
  claimctl history --since 24h deploy
  claimctl history -o json deploy | jq '.holds[] | select(.end == "forced")'`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeClaimNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd, opts.Name = cmd, args[0]
			if runF != nil {
				return runF(opts)
			}
			return historyRun(opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Since, "since", 0, "only holds and waits going on during the last DUR (e.g. 24h)")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	return cmd
}

func historyRun(opts *HistoryOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	if opts.cmd.Flags().Changed("since") && opts.Since <= 0 {
		return usageError("invalid --since %v: it must be positive, e.g. --since 24h; omit it for the whole history", opts.Since)
	}
	if err := claim.ValidateName(opts.Name); err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	hist, err := c.History(opts.cmd.Context(), opts.Name)
	if err != nil {
		return err
	}
	holds := hist.Holds
	var since time.Time
	if opts.Since > 0 {
		since = hist.ReadAt.Add(-opts.Since)
		holds = hist.ActiveSince(since)
	}
	if opts.Output == "json" {
		return writeJSON(f.IO.Out, newHistoryJSON(hist, holds, since))
	}
	out := bufio.NewWriter(f.IO.Out)
	if err := printHistory(out, hist, holds, opts.Since); err != nil {
		return err
	}
	return out.Flush()
}

// historyJSON is `history -o json`, documented in docs/json.md.
type historyJSON struct {
	Name                 string            `json:"name"`
	Revision             int64             `json:"revision"`
	CompleteFromRevision int64             `json:"complete_from_revision"`
	Compacted            bool              `json:"compacted"`
	CompleteAfter        *time.Time        `json:"complete_after,omitempty"`
	ReadAt               time.Time         `json:"read_at"`
	Since                *time.Time        `json:"since,omitempty"`
	Holds                []historyHoldJSON `json:"holds"`
}

// historyHoldJSON is one contender in `history -o json`.
type historyHoldJSON struct {
	Owner         string     `json:"owner"`
	Host          string     `json:"host,omitempty"`
	PID           int        `json:"pid,omitempty"`
	Note          string     `json:"note,omitempty"`
	Foreign       bool       `json:"foreign,omitempty"`
	FencingToken  int64      `json:"fencing_token"`
	LeaseID       string     `json:"lease_id"`
	Key           string     `json:"key"`
	Slot          *int       `json:"slot,omitempty"`
	SlotName      string     `json:"slot_name,omitempty"`
	TTLSeconds    int64      `json:"ttl_seconds,omitempty"`
	QueuedAt      *time.Time `json:"queued_at,omitempty"`
	AcquiredAt    *time.Time `json:"acquired_at,omitempty"`
	BeforeHistory bool       `json:"before_history,omitempty"`
	Held          bool       `json:"held"`
	TakenRevision int64      `json:"taken_revision,omitempty"`
	TakenAt       *time.Time `json:"taken_at,omitempty"`
	TakenAfter    *time.Time `json:"taken_after,omitempty"`
	TakenBy       *time.Time `json:"taken_by,omitempty"`
	WaitedMS      *int64     `json:"waited_ms,omitempty"`
	EndRevision   int64      `json:"end_revision,omitempty"`
	EndedAfter    *time.Time `json:"ended_after,omitempty"`
	EndedBy       *time.Time `json:"ended_by,omitempty"`
	End           string     `json:"end"`
	Proof         string     `json:"proof,omitempty"`
	ForcedBy      string     `json:"forced_by,omitempty"`
}

// utc is t in UTC for JSON, or nil when t is zero.
func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Round(0)
	return &u
}

func newHistoryJSON(hist *claim.History, holds []claim.PastHold, since time.Time) historyJSON {
	out := historyJSON{
		Name: hist.Name, Revision: hist.Revision, CompleteFromRevision: hist.From, Compacted: hist.Compacted,
		CompleteAfter: utc(hist.CompleteAfter), ReadAt: *utc(hist.ReadAt), Since: utc(since), Holds: []historyHoldJSON{},
	}
	for _, h := range holds {
		j := historyHoldJSON{
			Owner: h.OwnerString(), Foreign: h.Holder == nil, FencingToken: h.CreateRevision, LeaseID: fmt.Sprintf("%x", h.Lease), Key: h.Key,
			SlotName: h.SlotName, BeforeHistory: h.BeforeHistory, Held: h.Held, TakenRevision: h.TakenRevision, TakenAt: utc(h.TakenAt),
			EndRevision: h.EndRevision, End: string(h.End), Proof: string(h.Proof), ForcedBy: h.ForcedBy,
		}
		if hd := h.Holder; hd != nil {
			j.Owner, j.Host, j.PID, j.Note, j.TTLSeconds = hd.Owner, hd.Host, hd.PID, hd.Note, hd.TTLSeconds
			j.QueuedAt, j.AcquiredAt = utc(hd.QueuedAt), hd.AcquiredAt
		}
		if h.Slot >= 0 {
			slot := h.Slot
			j.Slot = &slot
		}
		if h.Held && h.TakenAt.IsZero() && h.TakenRevision > 0 {
			j.TakenAfter, j.TakenBy = utc(h.Taken.After), utc(h.Taken.By)
		}
		if h.Waited >= 0 {
			ms := h.Waited.Milliseconds()
			j.WaitedMS = &ms
		}
		if h.EndRevision > 0 {
			j.EndedAfter, j.EndedBy = utc(h.Ended.After), utc(h.Ended.By)
		}
		out.Holds = append(out.Holds, j)
	}
	return out
}

func printHistory(w io.Writer, hist *claim.History, holds []claim.PastHold, since time.Duration) error {
	nHolds, nGaveUp := 0, 0
	for _, h := range holds {
		switch {
		case h.Held:
			nHolds++
		case h.End == claim.EndGaveUp:
			nGaveUp++
		}
	}
	scope := ""
	if since > 0 {
		scope = " in the last " + since.String()
	}
	fmt.Fprintf(w, "%s: %d hold%s and %d waiter%s that gave up%s; ", hist.Name, nHolds, plural(nHolds), nGaveUp, plural(nGaveUp), scope)
	switch {
	case !hist.Compacted:
		fmt.Fprintf(w, "the history is complete (up to revision %d)\n", hist.Revision)
	case hist.CompleteAfter.IsZero():
		fmt.Fprintf(w, "the history is complete only from revision %d (etcd compacted the revisions before it; no timestamp tells since when), up to revision %d\n", hist.From, hist.Revision)
	default:
		fmt.Fprintf(w, "the history is complete only from revision %d (etcd compacted the revisions before it), that is for everything after %s, up to revision %d\n",
			hist.From, stamp(hist.CompleteAfter), hist.Revision)
	}
	if len(holds) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tOWNER\tHOST\tSLOT\tTAKEN\tWAITED\tENDED\tEND\tNOTE")
	for _, h := range holds {
		host := "-"
		if h.Holder != nil && h.Holder.Host != "" {
			host = h.Holder.Host
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.CreateRevision, owner(h.Entry), host, slot(h.Entry),
			taken(h, hist.ReadAt), waited(h, hist.ReadAt), ended(h, hist.ReadAt), endText(h), note(h.Entry))
	}
	return tw.Flush()
}

// stamp formats a time for text output, in local time.
func stamp(t time.Time) string { return t.Local().Format(time.DateTime) }

// span formats what is known of a time: "by T" when a timestamp bounds it
// from above, else "after T" when one bounds it from below.
func span(s claim.Span, readAt time.Time) string {
	switch {
	case s.By.Before(readAt) || s.After.IsZero():
		return "by " + stamp(s.By)
	default:
		return "after " + stamp(s.After)
	}
}

func taken(h claim.PastHold, readAt time.Time) string {
	switch {
	case !h.Held:
		return "-"
	case !h.TakenAt.IsZero():
		return stamp(h.TakenAt)
	case h.TakenRevision > 0:
		return span(h.Taken, readAt)
	}
	return "before the history"
}

func ended(h claim.PastHold, readAt time.Time) string {
	if h.EndRevision == 0 {
		return "-"
	}
	return span(h.Ended, readAt)
}

// waited is how long a contender waited: exact from its own timestamps, or
// bounded ("≤", "≥") by the estimate of when its wait ended.
func waited(h claim.PastHold, readAt time.Time) string {
	if h.Waited >= 0 {
		return waitString(h.Waited)
	}
	if h.Holder == nil || h.Holder.QueuedAt.IsZero() {
		return "-"
	}
	q := h.Holder.QueuedAt
	switch {
	case h.Held && h.TakenRevision > 0:
		return "≤" + waitString(h.Taken.By.Sub(q))
	case h.EndRevision > 0 && h.Ended.By.Before(readAt):
		return "≤" + waitString(h.Ended.By.Sub(q))
	case h.EndRevision > 0:
		return "≥" + waitString(h.Ended.After.Sub(q))
	case !h.Held:
		return "≥" + waitString(readAt.Sub(q))
	}
	return "-"
}

// waitString formats a wait: to the millisecond under a minute, else to the
// second.
func waitString(d time.Duration) string {
	d = max(d, 0)
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func endText(h claim.PastHold) string {
	if h.End == claim.EndForced {
		return "forced by " + h.ForcedBy
	}
	return strings.ReplaceAll(string(h.End), "_", " ")
}
