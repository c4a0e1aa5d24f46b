package cmd

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/runmetrics"
)

// ReleaseOptions are the inputs of `claimctl release`.
type ReleaseOptions struct {
	f      *Factory
	cmd    *cobra.Command
	Arg    string
	Force  bool
	Output string
}

// NewCmdRelease builds `claimctl release`.
func NewCmdRelease(f *Factory, runF func(*ReleaseOptions) error) *cobra.Command {
	opts := &ReleaseOptions{f: f}
	cmd := &cobra.Command{
		Use:   "release TOKEN | release --force NAME",
		Short: "Give back a claim taken with acquire (or remove its holder with --force)",
		Long: `Release the hold that TOKEN names, and only that hold. A stale, repeated or
foreign token removes nothing and fails with exit code 76 ("not held"), so a
retried release can never remove a later holder.

With --force NAME, an administrator removes the current holder(s) of NAME,
whoever they are. What was removed, and by whom, is printed; a holder running
under 'claimctl run' stops its child and reports who forced the release.

TOKEN defaults to $CLAIMCTL_TOKEN.`,
		Example: `  claimctl release "$TOKEN"
  trap 'claimctl release "$TOKEN"' EXIT
  claimctl release --force deploy`,
		Args: maxArgs(1, "[TOKEN]"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			// Only --force takes a name; a token cannot be completed.
			if !opts.Force {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeClaimNames(f)(cmd, args, toComplete)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd = cmd
			if opts.Force {
				if len(args) != 1 {
					return &flagError{fmt.Errorf("release --force takes the claim NAME")}
				}
				opts.Arg = args[0]
			} else {
				opts.Arg = tokenArg(f, args)
			}
			if runF != nil {
				return runF(opts)
			}
			return releaseRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "remove the current holder(s) of NAME, whoever they are")
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	addFlag(cmd.Flags(), "metrics-file", "the metrics file acquire --metrics-file wrote: record the hold's end there (ok)")
	return cmd
}

func releaseRun(opts *ReleaseOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	if opts.Force {
		return forceReleaseRun(opts)
	}
	tok, err := parseTokenArg(opts.Arg)
	if err != nil {
		return err
	}
	f.describe(slog.String(eventlog.KeyClaim, tok.Name), slog.Int64(eventlog.KeyFencingToken, tok.Revision))
	cfg, err := f.Config(opts.cmd)
	if err != nil {
		return err
	}
	if cfg.MetricsFile != "" {
		if err := runmetrics.Validate(cfg.MetricsFile); err != nil {
			return valueError("metrics-file", cfg.Sources["metrics-file"], err)
		}
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	if err := c.Release(opts.cmd.Context(), tok); err != nil {
		return err
	}
	if cfg.MetricsFile != "" {
		// The hold acquire --metrics-file left holding ends here.
		if _, err := runmetrics.Released(cfg.MetricsFile, tok.Name, tok.Revision, time.Now()); err != nil {
			f.event(true, slog.LevelWarn, eventlog.Notice, fmt.Sprintf("could not write the metrics file: %v", err))
		}
	}
	if opts.Output == "json" {
		return writeJSON(f.IO.Out, struct {
			Name         string `json:"name"`
			FencingToken int64  `json:"fencing_token"`
			Released     bool   `json:"released"`
		}{tok.Name, tok.Revision, true})
	}
	f.confirmReleased(tok)
	return nil
}

// confirmReleased logs a release by token: in text only on a terminal, in
// JSON always.
func (f *Factory) confirmReleased(tok claim.Token) {
	f.event(f.IO.IsStderrTTY(), slog.LevelInfo, eventlog.Released, fmt.Sprintf("released %s (fencing token %d)", tok.Name, tok.Revision))
}

func forceReleaseRun(opts *ReleaseOptions) error {
	f := opts.f
	if err := claim.ValidateName(opts.Arg); err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	f.describe(slog.String(eventlog.KeyClaim, opts.Arg))
	by := adminName(f.Getenv)
	removed, err := c.ForceRelease(opts.cmd.Context(), opts.Arg, by)
	if err != nil {
		return err
	}
	if opts.Output == "json" {
		out := struct {
			Name     string      `json:"name"`
			ForcedBy string      `json:"forced_by"`
			Removed  []entryJSON `json:"removed"`
		}{opts.Arg, by, []entryJSON{}}
		for _, e := range removed {
			out.Removed = append(out.Removed, newEntryJSON(e, -1))
		}
		if err := writeJSON(f.IO.Out, out); err != nil {
			return err
		}
	}
	// Forcing is an administrative act: say what was done even with -q.
	if len(removed) == 0 {
		f.event(true, slog.LevelWarn, eventlog.Notice, fmt.Sprintf("%s had no holder; nothing was removed", opts.Arg))
		return nil
	}
	for _, e := range removed {
		owner := ""
		if e.Holder != nil {
			owner = e.Holder.Owner
		}
		f.event(true, slog.LevelWarn, eventlog.Released, fmt.Sprintf("forced release of %s by %s: removed holder %s (fencing token %d, lease %x)",
			opts.Arg, by, e.OwnerString(), e.CreateRevision, e.Lease),
			slog.String(eventlog.KeyForcedBy, by), slog.String(eventlog.KeyOwner, owner), slog.Int64(eventlog.KeyFencingToken, e.CreateRevision))
	}
	return nil
}

// adminName says who forced a release: USER@HOST.
func adminName(getenv func(string) string) string {
	host, _ := os.Hostname()
	return userName(getenv) + "@" + host
}
