package cmd

import (
	"bufio"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
)

// ListOptions are the inputs of `claimctl list`.
type ListOptions struct {
	f          *Factory
	cmd        *cobra.Command
	NamePrefix string
	Output     string
}

// NewCmdList builds `claimctl list`.
func NewCmdList(f *Factory, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{f: f}
	cmd := &cobra.Command{
		Use:   "list [NAME-PREFIX]",
		Short: "List claims with their holders and the number waiting",
		Args:  maxArgs(1, "[NAME-PREFIX]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd = cmd
			if len(args) == 1 {
				opts.NamePrefix = args[0]
			}
			if runF != nil {
				return runF(opts)
			}
			return listRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	return cmd
}

func listRun(opts *ListOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	claims, err := c.List(opts.cmd.Context(), opts.NamePrefix)
	if err != nil {
		return err
	}
	if opts.Output == "json" {
		type claimJSON struct {
			Name    string      `json:"name"`
			Limit   int         `json:"limit"`
			Holders []entryJSON `json:"holders"`
			Waiting int         `json:"waiting"`
		}
		out := []claimJSON{}
		for _, s := range claims {
			cj := claimJSON{Name: s.Name, Limit: s.Limit, Holders: []entryJSON{}, Waiting: s.Waiting}
			for _, h := range s.Holders {
				cj.Holders = append(cj.Holders, newEntryJSON(h, -1))
			}
			out = append(out, cj)
		}
		return writeJSON(f.IO.Out, out)
	}
	return printClaims(f, claims, time.Now())
}

// printClaims writes list's table to stdout. With no claims it writes
// nothing there, and says so on stderr only to a person at a terminal.
func printClaims(f *Factory, claims []claim.Summary, now time.Time) error {
	if len(claims) == 0 {
		if f.IO.IsStderrTTY() && !f.Quiet {
			fmt.Fprintln(f.IO.ErrOut, "claimctl: no claims")
		}
		return nil
	}
	// tabwriter writes every cell separately: buffer them, or a listing
	// of 10,000 claims costs 130,000 write(2) calls.
	out := bufio.NewWriter(f.IO.Out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLIMIT\tOWNER\tSLOT\tFENCING TOKEN\tHELD\tWAITING")
	for _, s := range claims {
		for i, h := range s.Holders {
			name, waiting := s.Name, fmt.Sprint(s.Waiting)
			if i > 0 {
				name, waiting = "", ""
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", name, s.Limit, owner(h), slot(h), h.CreateRevision, heldFor(h, now), waiting)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}
