package server

import (
	"strings"
	"testing"
)

const before = `# HELP x
grpc_server_msg_received_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3
grpc_server_msg_received_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 2
etcd_mvcc_put_total 1
`

const after = `grpc_server_msg_received_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
grpc_server_msg_received_total{grpc_method="LeaseGrant",grpc_service="etcdserverpb.Lease",grpc_type="unary"} 2
grpc_server_msg_received_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 4
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 2
grpc_server_handled_total{grpc_code="Canceled",grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 1
etcd_mvcc_put_total 3
etcd_debugging_mvcc_events_total 5
`

func TestDiff(t *testing.T) {
	b, err := ParseMetrics(strings.NewReader(before))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseMetrics(strings.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	r := Diff(b, a)
	if r.Unary["Txn"] != 4 || r.Unary["LeaseGrant"] != 2 || r.StreamMsgs["Watch"] != 2 || r.StreamMsgs["LeaseKeepAlive"] != 1 || r.Puts != 2 || r.WatchEvents != 5 {
		t.Fatalf("diff = %+v", r)
	}
	if r.Total() != 9 {
		t.Fatalf("total = %v, want 9", r.Total())
	}
	if got := r.Per(2).String(); got != "Txn 2.00, LeaseGrant 1.00, Watch(stream) 1.00, LeaseKeepAlive(stream) 0.50" {
		t.Fatalf("String = %q", got)
	}
	if a.Sum("grpc_server_msg_received_total", `grpc_type="unary"`) != 9 {
		t.Fatal("Sum")
	}
}
