package claim

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClassifyError: the failures that leave a request's outcome unknown
// (timeouts, no leader, transport failures such as a stream reset, which
// gRPC reports as Internal) are ErrUnavailable (exit 69), and an Internal
// error that is the server's own is not. The nemesis found a waiter ending
// with exit 1 on "stream terminated by RST_STREAM with error code:
// PROTOCOL_ERROR" after a partition healed.
func TestClassifyError(t *testing.T) {
	for _, tc := range []struct {
		err         error
		unavailable bool
	}{
		{context.DeadlineExceeded, true},
		{status.Error(codes.Unavailable, "connection refused"), true},
		{status.Error(codes.Internal, "stream terminated by RST_STREAM with error code: PROTOCOL_ERROR"), true},
		{status.Error(codes.Internal, "transport is closing"), true},
		{status.Error(codes.Internal, "etcdserver: some server error"), false},
		// etcd 3.4's own server-side timeouts.
		{status.Error(codes.Unknown, "context deadline exceeded"), true},
		{status.Error(codes.Unknown, "context canceled"), true},
		{status.Error(codes.Unknown, "etcdserver: something unknown"), false},
		{errors.New("something else"), false},
	} {
		got := errors.Is(ClassifyError("acquire x", "claimctl/", []string{"e"}, tc.err), ErrUnavailable)
		if got != tc.unavailable {
			t.Errorf("ClassifyError(%v): unavailable %v, want %v", tc.err, got, tc.unavailable)
		}
	}
}

// TestHistoryUnsupported: the servers whose watch progress may come before
// the stored events (etcd issue 15220) are refused by History, by version.
func TestHistoryUnsupported(t *testing.T) {
	for v, refused := range map[string]bool{
		"3.3.27": true, "3.4.23": true, "3.4.30": true, "3.4.31": false, "3.5.12": true, "3.5.13": false,
		"3.5.36": false, "3.6.0": false, "3.7.3": false, "4.0.0": false, "garbage": false,
	} {
		if got := HistoryUnsupported(v) != ""; got != refused {
			t.Errorf("HistoryUnsupported(%q) refuses %v, want %v", v, got, refused)
		}
	}
}
