package cmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// AcquireOptions are the inputs of `claimctl acquire`.
type AcquireOptions struct {
	f       *Factory
	cmd     *cobra.Command
	Name    string
	Output  string
	Acquire acquireFlags
}

// NewCmdAcquire builds `claimctl acquire`. runF replaces the run function in
// tests of flag parsing.
func NewCmdAcquire(f *Factory, runF func(*AcquireOptions) error) *cobra.Command {
	opts := &AcquireOptions{f: f}
	cmd := &cobra.Command{
		Use:   "acquire NAME",
		Short: "Take a claim and print a token for a later renew or release",
		Long: `Take claim NAME and print a token on stdout, so that a later, separate process
(another CI job, an ExecStopPost) can renew or release it:

  TOKEN=$(claimctl acquire --ttl 10m deploy) && ... && claimctl release "$TOKEN"

By default acquire waits in line (FIFO) until the claim is free; -n fails at
once when it is busy and -w bounds the wait. The claim lasts --ttl unless
renewed. The token is printed only after the hold is verified.`,
		Example: `  claimctl acquire deploy
  claimctl acquire -n -E 0 nightly-report
  eval "$(claimctl acquire -o env --ttl 30m deploy)"`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeClaimNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd, opts.Name = cmd, args[0]
			if runF != nil {
				return runF(opts)
			}
			return acquireRun(opts)
		},
	}
	opts.Acquire.register(cmd)
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text (the token alone), json, or env (shell assignments)")
	return cmd
}

func acquireRun(opts *AcquireOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json", "env"); err != nil {
		return err
	}
	cfg, err := f.Config(opts.cmd)
	if err != nil {
		return err
	}
	if err := opts.Acquire.validate(opts.cmd, opts.Name, cfg.TTL); err != nil {
		return err
	}
	if err := f.startMetrics(cfg, opts.Name, runmetrics.Holding); err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	if err := refuseAncestor(opts.cmd.Context(), f, c, opts.Name, &opts.Acquire); err != nil {
		return err
	}

	ctx, stop := signalContext(opts.cmd.Context())
	defer stop()
	wctx, cancel := opts.Acquire.waitContext(ctx)
	defer cancel()
	holder := opts.Acquire.holder(f.Getenv)
	f.describeContender(opts.Name, holder)
	f.waitStarted = time.Now()
	reporter := newWaitReporter(f, opts.Name)
	hold, err := c.Acquire(wctx, opts.Acquire.claimOptions(opts.Name, cfg.TTL, holder, reporter.report))
	reporter.finish()
	if err != nil {
		return opts.Acquire.conflict(err)
	}
	f.heldSince = time.Now()
	f.describeHold(hold)
	f.metricsHolding(hold)
	if err := hold.RecordAcquired(opts.cmd.Context()); err != nil {
		_ = hold.Release() // the key is gone; do not leave its lease behind
		return fmt.Errorf("acquire %s: %w", opts.Name, err)
	}

	// A closed stdout must not kill claimctl with SIGPIPE before it can
	// revoke the lease: with SIGPIPE caught, the write returns EPIPE.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	if err := printHold(f, opts.Output, hold); err != nil {
		if rerr := hold.Release(); rerr != nil {
			return fmt.Errorf("could not print the token (%v), and releasing the claim failed too: %v", err, rerr)
		}
		return fmt.Errorf("could not print the token: %v; the claim was released", err)
	}
	f.confirmAcquired(hold, opts.Output)
	return nil
}

// confirmAcquired logs acquire's verified hold: in text only on a terminal
// and when stdout has the token alone (-o text), as a confirmation for the
// person who typed the command; in JSON always.
func (f *Factory) confirmAcquired(h *claim.Hold, output string) {
	f.logAcquired(h, f.IO.IsStderrTTY() && output == "text")
}

// logAcquired logs a verified hold; visible says whether the text log
// shows it (acquire on a terminal: the token went to stdout).
func (f *Factory) logAcquired(h *claim.Hold, visible bool) {
	waited := f.heldSince.Sub(f.waitStarted)
	msg := fmt.Sprintf("acquired %s (fencing token %d, TTL %v", h.Name, h.Revision, h.TTL)
	if h.Limit > 1 || h.SlotName != "" {
		msg += ", slot " + slotString(h.Slot, h.SlotName)
	}
	if waited >= time.Second {
		msg += fmt.Sprintf(", after waiting %v", waited.Round(100*time.Millisecond))
	}
	f.event(visible, slog.LevelInfo, eventlog.Acquired, msg+")", ms(eventlog.KeyWaitedMS, waited))
}

// refuseAncestor fails at once, with the busy code, when a run this process
// runs under holds claim name: acquiring it would queue behind its own
// ancestor. It costs a read only when the environment names such a hold.
func refuseAncestor(ctx context.Context, f *Factory, c *claim.Client, name string, flags *acquireFlags) error {
	holds, err := f.inheritedHolds()
	if err != nil || !enclosesName(holds, c.Keyspace().Prefix(), name) {
		return err
	}
	a, _, err := f.findAncestorHold(ctx, c, name)
	if err != nil || a == nil {
		return flags.conflict(err)
	}
	return flags.conflict(ancestorBusyError(name, a, "use the enclosing hold: its token is in $CLAIMCTL_TOKEN, and a nested 'claimctl run "+name+"' joins it"))
}

// holdJSON is the -o json form of a hold (docs: README "JSON output").
type holdJSON struct {
	Name         string    `json:"name"`
	Token        string    `json:"token"`
	FencingToken int64     `json:"fencing_token"`
	LeaseID      string    `json:"lease_id"`
	Key          string    `json:"key"`
	TTLSeconds   int64     `json:"ttl_seconds"`
	Limit        int       `json:"limit"`
	Slot         int       `json:"slot"`
	SlotName     string    `json:"slot_name,omitempty"`
	Owner        string    `json:"owner"`
	AcquiredAt   time.Time `json:"acquired_at"`
}

func printHold(f *Factory, output string, h *claim.Hold) error {
	acquired := h.Holder.QueuedAt
	if h.Holder.AcquiredAt != nil {
		acquired = *h.Holder.AcquiredAt
	}
	switch output {
	case "json":
		return writeJSON(f.IO.Out, holdJSON{
			Name: h.Name, Token: h.Token().String(), FencingToken: h.Revision,
			LeaseID: fmt.Sprintf("%x", h.Lease), Key: h.Key, TTLSeconds: int64(h.TTL / time.Second),
			Limit: h.Limit, Slot: h.Slot, SlotName: h.SlotName, Owner: h.Holder.Owner, AcquiredAt: acquired,
		})
	case "env":
		return writeEnv(f.IO.Out, holdEnv(h))
	default:
		_, err := fmt.Fprintln(f.IO.Out, h.Token().String())
		return err
	}
}

// holdEnv is the set of variables describing a hold (CLAIMCTL_SLOT: the
// slot's name for named slots, else its number, 0 for a mutex), shared by -o env and
// the environment of run's child. None of them is a configuration variable,
// so a claimctl started inside run is not reconfigured by them.
func holdEnv(h *claim.Hold) [][2]string {
	return tokenEnv(h.Token(), slotString(h.Slot, h.SlotName))
}

// tokenEnv is holdEnv for the hold a token names: what a run that joins an
// enclosing hold gives its command.
func tokenEnv(t claim.Token, slot string) [][2]string {
	return [][2]string{
		{"CLAIMCTL_NAME", t.Name},
		{"CLAIMCTL_TOKEN", t.String()},
		{"CLAIMCTL_FENCING_TOKEN", fmt.Sprint(t.Revision)},
		{"CLAIMCTL_LEASE_ID", fmt.Sprintf("%x", t.Lease)},
		{"CLAIMCTL_KEY", t.Key()},
		{"CLAIMCTL_SLOT", slot},
	}
}

// slotString is a slot as users see it: its name for named slots, else its
// number.
func slotString(slot int, name string) string {
	if name != "" {
		return name
	}
	return fmt.Sprint(slot)
}
