package cmd

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completionTimeout bounds how long a TAB may wait for etcd: a shell that
// hangs on completion is worse than one that offers nothing.
const completionTimeout = time.Second

// completeClaimNames offers the names of existing claims for the first
// argument, read from etcd within completionTimeout. Any failure (no etcd,
// bad configuration) silently offers nothing.
func completeClaimNames(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		cfg, err := f.Config(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		quick := *cfg
		quick.DialTimeout, quick.CommandTimeout = min(cfg.DialTimeout, completionTimeout), min(cfg.CommandTimeout, completionTimeout)
		f.cfg = &quick
		c, closeEtcd, err := f.Claims(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer closeEtcd()
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		claims, err := c.List(ctx, toComplete)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, s := range claims {
			if strings.HasPrefix(s.Name, toComplete) {
				desc := "free"
				if len(s.Holders) > 0 {
					desc = "held by " + s.Holders[0].OwnerString()
				}
				names = append(names, cobra.CompletionWithDesc(s.Name, desc))
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
