package runner_test

import (
	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/runner"
)

// claimctl runs commands on *claim.Hold: it must stay a runner.Hold.
var _ runner.Hold = (*claim.Hold)(nil)
