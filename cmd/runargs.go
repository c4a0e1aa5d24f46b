package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runUsage is run's usage line. It says what splitRunArgs does: claimctl's
// flags may come before NAME and after it, and the command starts at "--" or
// at the first argument after NAME that is neither a flag of claimctl's nor
// a flag's value.
const runUsage = "run [flags] NAME [flags] [--] CMD [ARGS...]"

// splitRunArgs splits what Cobra left of run's command line (it stops
// parsing flags at NAME, since everything from the command on must reach the
// command untouched) into NAME and the command, parsing claimctl's flags
// between the two with the command's own flag set.
//
// Cobra has already parsed the flags before NAME. If it met "--" before
// NAME (run -n -- NAME CMD), everything after it is NAME and the command.
func splitRunArgs(cmd *cobra.Command, args []string) (name string, command []string, err error) {
	if len(args) == 0 {
		return "", nil, &flagError{errors.New("run takes NAME and a command: claimctl " + runUsage)}
	}
	fl := cmd.Flags()
	name, rest := args[0], args[1:]
	if fl.ArgsLenAtDash() == 0 {
		// "run -- NAME CMD": no flags after NAME; a second "--" may still
		// separate NAME from the command.
		command = rest
		if len(command) > 0 && command[0] == "--" {
			command = command[1:]
		}
	} else {
		// Interspersed parsing is off, so Parse stops at the first argument
		// that is not a flag or a flag's value, and at "--": what is left
		// is the command.
		if err := fl.Parse(rest); err != nil {
			return "", nil, runFlagError(name, err)
		}
		command = fl.Args()
		if help, _ := fl.GetBool("help"); help {
			return "", nil, pflag.ErrHelp
		}
	}
	if len(command) == 0 {
		return "", nil, &flagError{fmt.Errorf("run needs a command after NAME: claimctl run %s [flags] -- CMD [ARGS...]", name)}
	}
	return name, command, nil
}

// runFlagError explains a flag after NAME that claimctl does not know: it
// may well be meant for the command, which then needs "--" before it.
func runFlagError(name string, err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		return err
	}
	var unknown *pflag.NotExistError
	if errors.As(err, &unknown) {
		return &flagError{fmt.Errorf("run %s: %v (claimctl's own flags come before the command; if it is the command's, start the command with '--': claimctl run %s [flags] -- CMD [ARGS...])", name, err, name)}
	}
	return &flagError{fmt.Errorf("run %s: %v", name, err)}
}

// completeRunArgs completes run's arguments: claim names for NAME; after
// NAME, claimctl's flags while the command has not started (Cobra itself
// stops completing flags after the first argument, since run parses them by
// hand), then files and commands.
func completeRunArgs(f *Factory) cobra.CompletionFunc {
	names := completeClaimNames(f)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return names(cmd, args, toComplete)
		}
		if runCommandStarted(cmd.Flags(), args[1:]) || !strings.HasPrefix(toComplete, "-") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var out []cobra.Completion
		cmd.Flags().VisitAll(func(fl *pflag.Flag) {
			if fl.Hidden {
				return
			}
			if long := "--" + fl.Name; strings.HasPrefix(long, toComplete) {
				out = append(out, cobra.CompletionWithDesc(long, fl.Usage))
			}
			if fl.Shorthand != "" && strings.HasPrefix("-"+fl.Shorthand, toComplete) && len(toComplete) <= 2 {
				out = append(out, cobra.CompletionWithDesc("-"+fl.Shorthand, fl.Usage))
			}
		})
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// runCommandStarted reports whether the arguments after NAME already contain
// the start of the command, by the rule splitRunArgs applies.
func runCommandStarted(fl *pflag.FlagSet, after []string) bool {
	for i := 0; i < len(after); i++ {
		a := after[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return true
		}
		if strings.Contains(a, "=") {
			continue
		}
		var f *pflag.Flag
		if strings.HasPrefix(a, "--") {
			f = fl.Lookup(a[2:])
		} else {
			f = fl.ShorthandLookup(a[len(a)-1:])
		}
		if f == nil {
			return true // not ours: parsing would stop with an error here
		}
		if f.NoOptDefVal == "" && (strings.HasPrefix(a, "--") || len(a) == 2) {
			i++ // the next argument is the flag's value
		}
	}
	return false
}
