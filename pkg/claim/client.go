package claim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Client runs the claim protocol against one etcd cluster.
type Client struct {
	etcd *clientv3.Client
	// leases is the raw lease API on etcd's connection, for the grant with
	// a chosen ID that clientv3's Lease does not offer (grantAndCreate).
	// It shares the connection's credentials and its retry rule for
	// requests that are not repeatable: retried only if never sent.
	leases  etcdserverpb.LeaseClient
	keys    Keyspace
	timeout time.Duration
}

// Options configures a Client.
type Options struct {
	// Prefix is the key prefix claims live under (DefaultPrefix if empty).
	Prefix string
	// RequestTimeout bounds every single etcd request. Waiting for a claim is
	// bounded by the caller's context instead.
	RequestTimeout time.Duration
}

// New returns a Client using etcd. The caller owns etcd and closes it.
func New(etcd *clientv3.Client, opts Options) (*Client, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	ks, err := NewKeyspace(opts.Prefix)
	if err != nil {
		return nil, err
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	return &Client{etcd: etcd, leases: etcdserverpb.NewLeaseClient(etcd.ActiveConnection()), keys: ks, timeout: opts.RequestTimeout}, nil
}

// Keyspace returns the layout of the client's keys.
func (c *Client) Keyspace() Keyspace { return c.keys }

// request returns a context for one etcd request: the caller's context
// bounded by the request timeout.
func (c *Client) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// cleanup returns a context for clean-up work (revoking a lease) that must run
// even when the caller's context has ended.
func (c *Client) cleanup() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

// etcdError classifies an error from etcd so callers can map it to an exit
// code, and says what was being done and where.
func (c *Client) etcdError(op string, err error) error {
	return ClassifyError(op, c.keys.Prefix(), c.etcd.Endpoints(), err)
}

// ClassifyError wraps an error from etcd in the matching sentinel
// (ErrUnavailable, ErrPermission) with the operation, the key prefix and the
// endpoints named.
func ClassifyError(op, prefix string, endpointList []string, err error) error {
	if err == nil {
		return nil
	}
	endpoints := strings.Join(endpointList, ",")
	switch {
	case isPermission(err):
		return fmt.Errorf("%s: %w under prefix %q: %v; check the user's role grants read and write on the prefix", op, ErrPermission, prefix, rpcDesc(err))
	case isAuth(err):
		return fmt.Errorf("%s: %w: %v; check --user and --password", op, ErrPermission, rpcDesc(err))
	case isUnavailable(err):
		return fmt.Errorf("%s: %w at %s: %v", op, ErrUnavailable, endpoints, rpcDesc(err))
	}
	return fmt.Errorf("%s: %w", op, err)
}

func rpcDesc(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

func isPermission(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied) || status.Code(err) == codes.PermissionDenied
}

func isAuth(err error) bool {
	return errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrInvalidAuthToken) ||
		errors.Is(err, rpctypes.ErrAuthNotEnabled) || errors.Is(err, rpctypes.ErrUserEmpty) ||
		status.Code(err) == codes.Unauthenticated
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) || errors.Is(err, rpctypes.ErrLeaderChanged) ||
		errors.Is(err, rpctypes.ErrTooManyRequests) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	case codes.Internal:
		// gRPC's own transport failures (an HTTP/2 stream reset, a
		// connection torn mid-frame) arrive as Internal; etcd's server
		// errors carry their own codes. Such a request's outcome is
		// unknown, exactly as with a timeout.
		return isTransportError(status.Convert(err).Message())
	case codes.Unknown:
		// etcd 3.4 members (their gRPC predates status-coded context
		// errors) send a request's own timeout on the server, a ReadIndex
		// that a leader change left waiting say, as Unknown with the
		// context's text. Its outcome is unknown as well (TestNemesis found
		// a waiter exiting 1 on it against 3.4.23).
		msg := status.Convert(err).Message()
		return msg == context.DeadlineExceeded.Error() || msg == context.Canceled.Error()
	}
	return false
}

// isTransportError recognises the messages gRPC gives its transport's
// failures.
func isTransportError(msg string) bool {
	for _, s := range []string{"stream terminated by RST_STREAM", "transport is closing", "connection reset", "error reading from server", "unexpected EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// IsLeaseNotFound reports whether err says the lease no longer exists.
func isLeaseExists(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseExist) || errors.Is(err, rpctypes.ErrGRPCLeaseExist)
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound)
}

// revoke removes a lease and, with it, every key attached to it. It runs on
// its own context so that clean-up happens even after the caller gave up.
func (c *Client) revoke(lease clientv3.LeaseID) error {
	ctx, cancel := c.cleanup()
	defer cancel()
	_, err := c.etcd.Revoke(ctx, lease)
	if err != nil && !isLeaseNotFound(err) {
		return c.etcdError("revoke lease", err)
	}
	return nil
}

// entries parses the keys of one claim's range.
func (c *Client) entry(key []byte, create int64, value []byte) Entry {
	name, lease, _ := c.keys.Parse(string(key))
	return Entry{Key: string(key), Name: name, Lease: lease, CreateRevision: create, Holder: decodeHolder(value), Slot: -1}
}
