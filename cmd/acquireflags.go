package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
)

// acquireFlags are the flags acquire and run share. Short flags follow
// util-linux flock (-n, -w, -E) so that users' habits carry over.
type acquireFlags struct {
	Limit        int
	SlotsFlag    string
	Slots        []string
	NonBlock     bool
	Timeout      time.Duration
	ConflictExit int
	Note         string
	Owner        string

	conflictExitSet bool
}

func (a *acquireFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	addFlag(fl, "ttl")
	fl.IntVar(&a.Limit, "limit", 1, "holders allowed at once: 1 is a mutex, N a semaphore; all clients of a claim must agree")
	fl.StringVar(&a.SlotsFlag, "slots", "", "named slots, comma-separated (db-1,db-2,...): the limit is their number; CLAIMCTL_SLOT is the holder's slot's name")
	fl.BoolVarP(&a.NonBlock, "nonblock", "n", false, "fail at once (exit 75) if the claim is busy")
	fl.DurationVarP(&a.Timeout, "timeout", "w", 0, "give up waiting after this long (exit 75); default: wait indefinitely")
	fl.IntVarP(&a.ConflictExit, "conflict-exit-code", "E", ExitBusy, "exit code when busy or timed out; -n -E 0 skips quietly")
	fl.StringVar(&a.Note, "note", "", "note stored with the claim, shown by status and to waiters")
	fl.StringVar(&a.Owner, "owner", "", "owner shown to others (default USER@HOST)")
	addFlag(fl, "metrics-file")
}

// claimOptions is what acquire and run ask pkg/claim for.
func (a *acquireFlags) claimOptions(name string, ttl time.Duration, holder claim.Holder, progress func(claim.QueueState)) claim.AcquireOptions {
	return claim.AcquireOptions{
		Name:        name,
		TTL:         ttl,
		Limit:       a.Limit,
		Slots:       a.Slots,
		NonBlocking: a.NonBlock,
		Holder:      holder,
		Progress:    progress,
	}
}

// validate checks the shared flags before anything connects to etcd.
func (a *acquireFlags) validate(cmd *cobra.Command, name string, ttl time.Duration) error {
	a.conflictExitSet = cmd.Flags().Changed("conflict-exit-code")
	if err := claim.ValidateName(name); err != nil {
		return err
	}
	if err := claim.ValidateTTL(ttl); err != nil {
		return err
	}
	if err := claim.ValidateLimit(a.Limit); err != nil {
		return err
	}
	if cmd.Flags().Changed("slots") {
		a.Slots = strings.Split(a.SlotsFlag, ",")
		if a.SlotsFlag == "" {
			a.Slots = []string{}
		}
		if err := claim.ValidateSlots(a.Slots); err != nil {
			return err
		}
		if cmd.Flags().Changed("limit") && a.Limit != len(a.Slots) {
			return usageError("--slots names %d slot%s but --limit is %d: --slots sets the limit; drop --limit", len(a.Slots), plural(len(a.Slots)), a.Limit)
		}
		a.Limit = len(a.Slots)
	}
	if cmd.Flags().Changed("timeout") && a.Timeout <= 0 {
		return usageError("invalid --timeout %v: it must be positive; omit -w to wait indefinitely", a.Timeout)
	}
	if a.NonBlock && a.Timeout > 0 {
		return usageError("-n and -w contradict each other: -n never waits; use one of them")
	}
	if a.ConflictExit < 0 || a.ConflictExit > 255 {
		return usageError("invalid --conflict-exit-code %d: use 0 to 255", a.ConflictExit)
	}
	return nil
}

// holder returns the metadata to store with the claim; getenv is the
// factory's.
func (a *acquireFlags) holder(getenv func(string) string) claim.Holder {
	host, _ := os.Hostname()
	owner := a.Owner
	if owner == "" {
		owner = userName(getenv) + "@" + host
	}
	return claim.Holder{Owner: owner, Host: host, PID: os.Getpid(), Note: a.Note}
}

// userName is $USER, or the account name where USER is unset (cron on
// some systems).
func userName(getenv func(string) string) string {
	if v := getenv("USER"); v != "" {
		return v
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// waitContext bounds ctx by -w, so that the end of the wait is told apart
// from claimctl's own request timeouts.
func (a *acquireFlags) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, a.Timeout, fmt.Errorf("no slot within -w %v", a.Timeout))
}

// conflict turns a busy or timed-out acquire into the exit code -E asks for.
// -E 0 asks for silence: a cron job skipping its turn is not an error.
func (a *acquireFlags) conflict(err error) error {
	if !errors.Is(err, claim.ErrBusy) && !errors.Is(err, claim.ErrWaitTimeout) {
		return err
	}
	var se signalError
	if errors.As(err, &se) {
		return err
	}
	return &exitError{code: a.ConflictExit, err: err, quiet: a.ConflictExit == 0}
}
