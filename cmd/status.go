package cmd

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
)

// StatusOptions are the inputs of `claimctl status`.
type StatusOptions struct {
	f      *Factory
	cmd    *cobra.Command
	Name   string
	Output string
}

// NewCmdStatus builds `claimctl status`.
func NewCmdStatus(f *Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{f: f}
	cmd := &cobra.Command{
		Use:               "status NAME",
		Short:             "Show a claim's holders (with fencing tokens and remaining TTL) and its queue",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeClaimNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd, opts.Name = cmd, args[0]
			if runF != nil {
				return runF(opts)
			}
			return statusRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	return cmd
}

// entryJSON is one contender in -o json output.
type entryJSON struct {
	Owner            string     `json:"owner"`
	Host             string     `json:"host,omitempty"`
	PID              int        `json:"pid,omitempty"`
	Note             string     `json:"note,omitempty"`
	FencingToken     int64      `json:"fencing_token"`
	LeaseID          string     `json:"lease_id"`
	Key              string     `json:"key"`
	Slot             *int       `json:"slot,omitempty"`
	SlotName         string     `json:"slot_name,omitempty"`
	QueuedAt         *time.Time `json:"queued_at,omitempty"`
	AcquiredAt       *time.Time `json:"acquired_at,omitempty"`
	TTLSeconds       int64      `json:"ttl_seconds,omitempty"`
	RemainingSeconds *int64     `json:"remaining_seconds,omitempty"`
}

func newEntryJSON(e claim.Entry, remaining time.Duration) entryJSON {
	j := entryJSON{Owner: e.OwnerString(), FencingToken: e.CreateRevision, LeaseID: fmt.Sprintf("%x", e.Lease), Key: e.Key, SlotName: e.SlotName}
	if e.Slot >= 0 {
		slot := e.Slot
		j.Slot = &slot
	}
	if h := e.Holder; h != nil {
		j.Owner, j.Host, j.PID, j.Note, j.TTLSeconds = h.Owner, h.Host, h.PID, h.Note, h.TTLSeconds
		if !h.QueuedAt.IsZero() {
			q := h.QueuedAt
			j.QueuedAt = &q
		}
		j.AcquiredAt = h.AcquiredAt
	}
	if remaining >= 0 {
		r := int64(remaining / time.Second)
		j.RemainingSeconds = &r
	}
	return j
}

func statusRun(opts *StatusOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	if err := claim.ValidateName(opts.Name); err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	st, err := c.Status(opts.cmd.Context(), opts.Name)
	if err != nil {
		return err
	}
	if opts.Output == "json" {
		out := struct {
			Name     string      `json:"name"`
			Limit    int         `json:"limit"`
			Revision int64       `json:"revision"`
			Holders  []entryJSON `json:"holders"`
			Waiters  []entryJSON `json:"waiters"`
		}{st.Name, st.Limit, st.Revision, []entryJSON{}, []entryJSON{}}
		for _, h := range st.Holders {
			out.Holders = append(out.Holders, newEntryJSON(h.Entry, h.Remaining))
		}
		for _, w := range st.Waiters {
			out.Waiters = append(out.Waiters, newEntryJSON(w, -1))
		}
		return writeJSON(f.IO.Out, out)
	}
	return printStatus(f.IO.Out, st, time.Now())
}

func printStatus(w io.Writer, st claim.Status, now time.Time) error {
	if len(st.Holders) == 0 {
		_, err := fmt.Fprintf(w, "%s is free\n", st.Name)
		return err
	}
	kind := "mutex"
	if st.Limit > 1 {
		kind = fmt.Sprintf("semaphore, limit %d", st.Limit)
	}
	fmt.Fprintf(w, "%s (%s): %d holder%s, %d waiting\n", st.Name, kind, len(st.Holders), plural(len(st.Holders)), len(st.Waiters))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tOWNER\tSLOT\tFENCING TOKEN\tLEASE\tHELD/WAITED\tEXPIRES IN\tNOTE")
	for _, h := range st.Holders {
		expires := "?"
		if h.Remaining >= 0 {
			expires = h.Remaining.String()
		}
		fmt.Fprintf(tw, "holder\t%s\t%s\t%d\t%x\t%s\t%s\t%s\n", owner(h.Entry), slot(h.Entry), h.CreateRevision, h.Lease, heldFor(h.Entry, now), expires, note(h.Entry))
	}
	for i, e := range st.Waiters {
		fmt.Fprintf(tw, "waiting #%d\t%s\t-\t-\t%x\t%s\t-\t%s\n", i+1, owner(e), e.Lease, waitedFor(e, now), note(e))
	}
	return tw.Flush()
}

// slot is a holder's slot for text output: its name or number, "-" when
// it has not taken one yet.
func slot(e claim.Entry) string {
	if e.Slot < 0 {
		return "-"
	}
	return slotString(e.Slot, e.SlotName)
}

func owner(e claim.Entry) string {
	if e.Holder == nil {
		return "(no metadata: etcdctl lock?)"
	}
	return e.Holder.Owner
}

func note(e claim.Entry) string {
	if e.Holder == nil || e.Holder.Note == "" {
		return "-"
	}
	return strings.ReplaceAll(e.Holder.Note, "\t", " ")
}

// heldFor is how long a holder has held the claim: since acquired_at, or
// since queued_at when it did not wait (a holder that waited but has not yet
// recorded acquired_at counts its wait too, for the first moments of its
// hold).
func heldFor(e claim.Entry, now time.Time) string {
	if e.Holder == nil {
		return "-"
	}
	t := e.Holder.QueuedAt
	if e.Holder.AcquiredAt != nil {
		t = *e.Holder.AcquiredAt
	}
	return forString(t, now)
}

// waitedFor is how long a waiter has waited: since queued_at.
func waitedFor(e claim.Entry, now time.Time) string {
	if e.Holder == nil {
		return "-"
	}
	return forString(e.Holder.QueuedAt, now)
}

// forString is the time from t to now, to the second.
func forString(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return max(now.Sub(t).Round(time.Second), 0).String()
}
