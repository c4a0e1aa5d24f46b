package cluster

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/claimctl/claimctl/bench/internal/server"
)

func parse(t *testing.T, text string) Scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return Scrape{fams}
}

// TestSumAndCommitted checks that the members' counters add up into the
// series server.Diff reads, and that the commit index is the highest
// member's.
func TestSumAndCommitted(t *testing.T) {
	member := func(committed, grants string) string {
		return `# TYPE etcd_server_proposals_committed_total gauge
etcd_server_proposals_committed_total ` + committed + `
# TYPE grpc_server_msg_received_total counter
grpc_server_msg_received_total{grpc_method="LeaseGrant",grpc_service="etcdserverpb.Lease",grpc_type="unary"} ` + grants + `
`
	}
	before := append(append(parse(t, member("10", "1")), parse(t, member("9", "0"))...), parse(t, member("10", "2"))...)
	after := append(append(parse(t, member("14", "2")), parse(t, member("14", "0"))...), parse(t, member("13", "4"))...)
	if got := after.Committed() - before.Committed(); got != 4 {
		t.Errorf("writes = %v, want 4", got)
	}
	d := server.Diff(before.Sum(), after.Sum())
	if got := d.Unary["LeaseGrant"]; got != 3 {
		t.Errorf("LeaseGrant = %v, want 3 (%v)", got, d)
	}
}
