// Package cmd is claimctl's command line: Cobra commands, one file per verb,
// each an options struct and a plain run function. The claim protocol lives
// in pkg/claim and the child supervisor in pkg/supervise.
package cmd

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/iostreams"
)

// BuildInfo is stamped into the binary at release time.
type BuildInfo struct {
	Version string
	Commit  string
	Date    string
}

// Main runs claimctl with the process's streams and returns its exit code.
// Only main calls os.Exit.
func Main(build BuildInfo, args []string) int {
	return Run(context.Background(), build, iostreams.System(), os.Getenv, args)
}

// Run runs claimctl with the given streams and environment and returns the
// exit code. Every error is printed once, here, as "claimctl: ...".
func Run(ctx context.Context, build BuildInfo, streams *iostreams.IOStreams, getenv func(string) string, args []string) int {
	f := &Factory{IO: streams, Build: build, Getenv: getenv}
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		f.finishMetrics(nil, ExitOK)
		return ExitOK
	}
	err = f.explainTLS(err)
	var flagErr *flagError
	if errors.As(err, &flagErr) || isUnknownCommand(cmd, err) {
		f.logExit(err, ExitUsage, true)
		return ExitUsage
	}
	code := exitCode(err)
	f.finishMetrics(err, code)
	f.logExit(err, code, false)
	return code
}

// flagError marks errors from flag parsing, which are reported with a hint
// to --help.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// isUnknownCommand reports whether err, returned by Execute for cmd, is
// Cobra's failure to find a command: the one usage error Cobra reports
// itself, since every command checks its own arguments (exactArgs, maxArgs,
// noArgs). Cobra looks the command up before it parses any flag and fails
// there only, so an error from a command whose flags were never parsed is
// that failure. The one other such error is the arity check of Cobra's
// hidden __complete (which parses no flags of its own): a usage error too.
func isUnknownCommand(cmd *cobra.Command, err error) bool {
	return err != nil && cmd != nil && !cmd.Flags().Parsed()
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "claimctl",
		Short: "Scripted locking (claims) on etcd for cron jobs, CI pipelines and shell scripts",
		Long: `claimctl takes, holds and releases named claims (locks and semaphores) on etcd.

  claimctl run NAME -- CMD ARGS   hold NAME exactly while CMD runs
  TOKEN=$(claimctl acquire NAME)  take NAME and hand it to a later process
  claimctl renew TOKEN            keep it alive
  claimctl release TOKEN          give it back

Every holder gets a fencing token: the holder key's etcd create revision,
strictly increasing for each claim. Run 'claimctl help exit-codes' for the
exit codes.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           f.Build.Version,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetVersionTemplate(versionText(f.Build) + "\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &flagError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&f.ConfigPath, "config", "", "config file (default $CLAIMCTL_CONFIG, $XDG_CONFIG_HOME/claimctl/config.yaml, /etc/claimctl/config.yaml)")
	addGlobalFlags(pf, map[string]*string{"log-format": &f.LogFormatFlag})
	pf.BoolVarP(&f.Quiet, "quiet", "q", false, "no messages on stderr except errors")

	root.AddCommand(
		NewCmdAcquire(f, nil),
		NewCmdRenew(f, nil),
		NewCmdRelease(f, nil),
		NewCmdRun(f, nil),
		NewCmdStatus(f, nil),
		NewCmdList(f, nil),
		NewCmdHistory(f, nil),
		NewCmdDoctor(f, nil),
		NewCmdVersion(f, nil),
		NewCmdHelpExitCodes(),
	)
	// Cobra adds its completion command when the root runs; adding it now
	// lets its subcommands check their arguments as ours do.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			for _, shell := range c.Commands() {
				shell.Args = noArgs()
			}
		}
	}
	return root
}

// signalContext returns a context cancelled, with a signalError as its
// cause, when claimctl receives SIGINT, SIGTERM or SIGHUP, so that a waiting
// command can clean up and exit 128+n.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	interrupted := cancelOnSignal(ch, cancel)
	return ctx, func() {
		signal.Stop(ch)
		interrupted()
		cancel(context.Canceled)
	}
}

// cancelOnSignal calls cancel, with a signalError as the cause, when a
// signal other than SIGWINCH arrives on signals. The function it returns
// stops watching and reports the signal that cancelled, if any; signals
// that arrive after it are left on the channel for the caller.
func cancelOnSignal(signals <-chan os.Signal, cancel context.CancelCauseFunc) func() error {
	done := make(chan struct{})
	finished := make(chan struct{})
	var got error
	go func() {
		defer close(finished)
		for {
			select {
			case s := <-signals:
				sig, ok := s.(syscall.Signal)
				if !ok || isWinch(sig) {
					continue
				}
				got = signalError{sig}
				cancel(got)
				return
			case <-done:
				return
			}
		}
	}()
	return func() error {
		close(done)
		<-finished
		return got
	}
}
