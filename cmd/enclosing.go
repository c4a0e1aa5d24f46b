package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// holdsVar carries every hold that encloses a command started by run,
// outermost first, so that a claimctl inside it can recognise a claim its
// ancestors hold: a nested run of it joins the hold instead of queuing
// behind its own ancestor, and a nested acquire fails at once. Each entry is
// TOKEN@PID:START, the hold's token and the Identity of the run that keeps
// it; entries are separated by spaces. The innermost hold is also in
// CLAIMCTL_TOKEN and friends (holdEnv).
const holdsVar = "CLAIMCTL_HOLDS"

// enclosingHold is one entry of holdsVar.
type enclosingHold struct {
	Token      claim.Token
	Supervisor supervise.Identity
}

func (e enclosingHold) String() string { return e.Token.String() + "@" + e.Supervisor.String() }

// inheritedHolds parses holdsVar from the environment. A malformed value is
// an error for every run and acquire: it could hide an enclosing hold, and
// guessing would either wait on an ancestor or join a hold that is not one.
func (f *Factory) inheritedHolds() ([]enclosingHold, error) {
	v := f.Getenv(holdsVar)
	var out []enclosingHold
	for i, field := range strings.Fields(v) {
		bad := func(format string, args ...any) error {
			return withCode(ExitBadToken, fmt.Errorf("malformed %s: entry %d: %s; claimctl run sets it for its command as TOKEN@PID:START entries: do not edit it, or unset it (env -u %s) where it was copied by hand",
				holdsVar, i+1, fmt.Sprintf(format, args...), holdsVar))
		}
		tok, sup, ok := strings.Cut(field, "@")
		if !ok {
			return nil, bad("%q has no '@' between the token and the run's PID:START", field)
		}
		t, err := claim.ParseToken(tok)
		if err != nil {
			return nil, bad("%v", err)
		}
		id, err := supervise.ParseIdentity(sup)
		if err != nil {
			return nil, bad("%v", err)
		}
		out = append(out, enclosingHold{Token: t, Supervisor: id})
	}
	return out, nil
}

// formatHolds is the value of holdsVar for a list of holds.
func formatHolds(holds []enclosingHold) string {
	parts := make([]string, len(holds))
	for i, h := range holds {
		parts[i] = h.String()
	}
	return strings.Join(parts, " ")
}

// ancestorHold is what a run or acquire of a claim learned about an
// inherited hold of the same claim.
type ancestorHold struct {
	enclosingHold
	// proof is the read that proved the hold still held now.
	proof claim.Enclosing
}

// findAncestorHold looks for an inherited hold of claim name under prefix
// that this process is inside of, and proves it with one read. It returns
// nil when there is none to act on: no entry for the claim; an entry whose
// run this process has left (setsid, another process group: that run would
// not stop this process, so it is on its own and takes its own hold); or a
// token from another etcd cluster. When the entry is covered but the read
// shows the hold ended, gone is true: the run that kept it has lost it and
// is stopping its command, this process included.
func (f *Factory) findAncestorHold(ctx context.Context, c *claim.Client, name string) (hold *ancestorHold, gone bool, err error) {
	holds, err := f.inheritedHolds()
	if err != nil {
		return nil, false, err
	}
	prefix := c.Keyspace().Prefix()
	for i := len(holds) - 1; i >= 0; i-- {
		h := holds[i]
		if h.Token.Prefix != prefix || h.Token.Name != name {
			continue
		}
		var via []supervise.Identity
		for _, inner := range holds[i+1:] {
			via = append(via, inner.Supervisor)
		}
		if err := h.Supervisor.Covers(via...); errors.Is(err, supervise.ErrOtherGroup) {
			// A job of an interactive shell under that run: the run would
			// not stop it, so it cannot join, and the run waits for it, so
			// waiting for the claim would wait on an ancestor.
			return nil, false, &ancestorBusy{msg: fmt.Sprintf("claim %s is held by an enclosing claimctl run (pid %d, fencing token %d), but %v, so it cannot join that hold, and waiting would wait on an ancestor; run it in the enclosing command's process group (for example without job control: set +m)",
				name, h.Supervisor.PID, h.Token.Revision, err)}
		} else if err != nil {
			f.event(true, slog.LevelInfo, eventlog.Notice, fmt.Sprintf("note: %s names a hold of %s (fencing token %d), but %v; taking a hold of its own",
				holdsVar, name, h.Token.Revision, err))
			return nil, false, nil
		}
		proof, err := c.ProveEnclosing(ctx, h.Token)
		switch {
		case err != nil:
			return nil, false, err
		case proof.OtherCluster:
			return nil, false, nil
		case !proof.Held:
			return nil, true, nil
		}
		return &ancestorHold{enclosingHold: h, proof: proof}, false, nil
	}
	return nil, false, nil
}

// ancestorBusyError is what acquire (and run --new-hold on a mutex) report
// instead of queuing behind their own ancestor's hold. It is a busy error
// (exit 75, or -E).
func ancestorBusyError(name string, a *ancestorHold, howto string) error {
	return &ancestorBusy{msg: fmt.Sprintf("claim %s is held by an enclosing claimctl run (pid %d, fencing token %d): waiting for it here would wait on an ancestor forever; %s",
		name, a.Supervisor.PID, a.Token.Revision, howto)}
}

type ancestorBusy struct{ msg string }

func (e *ancestorBusy) Error() string { return e.msg }
func (e *ancestorBusy) Unwrap() error { return claim.ErrBusy }
