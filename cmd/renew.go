package cmd

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
)

// RenewOptions are the inputs of `claimctl renew`.
type RenewOptions struct {
	f      *Factory
	cmd    *cobra.Command
	Token  string
	Output string
}

// NewCmdRenew builds `claimctl renew`.
func NewCmdRenew(f *Factory, runF func(*RenewOptions) error) *cobra.Command {
	opts := &RenewOptions{f: f}
	cmd := &cobra.Command{
		Use:   "renew [TOKEN]",
		Short: "Extend a claim taken with acquire, and check it is still held",
		Long: `Renew the lease behind TOKEN for another TTL and verify that the token still
holds its claim. It fails with exit code 76 when the claim was lost (the lease
expired, or the claim was released or removed with --force).

TOKEN defaults to $CLAIMCTL_TOKEN.`,
		Example: `  while sleep 20; do claimctl renew "$TOKEN" || exit; done &`,
		Args:    maxArgs(1, "[TOKEN]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd = cmd
			opts.Token = tokenArg(f, args)
			if runF != nil {
				return runF(opts)
			}
			return renewRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	return cmd
}

// tokenArg returns the token argument, or $CLAIMCTL_TOKEN when none is given.
func tokenArg(f *Factory, args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return f.Getenv("CLAIMCTL_TOKEN")
}

func parseTokenArg(s string) (claim.Token, error) {
	if s == "" {
		return claim.Token{}, usageError("no token: pass the token acquire printed, or set CLAIMCTL_TOKEN")
	}
	return claim.ParseToken(s)
}

func renewRun(opts *RenewOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	tok, err := parseTokenArg(opts.Token)
	if err != nil {
		return err
	}
	f.describe(slog.String(eventlog.KeyClaim, tok.Name), slog.Int64(eventlog.KeyFencingToken, tok.Revision))
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	res, err := c.Renew(opts.cmd.Context(), tok)
	if err != nil {
		return err
	}
	if opts.Output == "json" {
		return writeJSON(f.IO.Out, struct {
			Name         string `json:"name"`
			FencingToken int64  `json:"fencing_token"`
			LeaseID      string `json:"lease_id"`
			TTLSeconds   int64  `json:"ttl_seconds"`
		}{tok.Name, tok.Revision, fmt.Sprintf("%x", tok.Lease), int64(res.TTL / time.Second)})
	}
	f.confirmRenewed(tok, res.TTL)
	return nil
}

// confirmRenewed logs a renewal: in text only on a terminal, in JSON always.
func (f *Factory) confirmRenewed(tok claim.Token, ttl time.Duration) {
	f.event(f.IO.IsStderrTTY(), slog.LevelInfo, eventlog.Renewed, fmt.Sprintf("renewed %s (fencing token %d) for %v", tok.Name, tok.Revision, ttl))
}
