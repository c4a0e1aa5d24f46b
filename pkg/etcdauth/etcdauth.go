// Package etcdauth gives an etcd client password authentication that costs
// the cluster one Authenticate per process, instead of one per stream.
//
// Every Authenticate is a bcrypt check on the member that receives it (about
// 30 ms of CPU at etcd's cost 10) and a Raft entry. etcd's clientv3
// authenticates when the client is created and again each time it opens a
// stream (streamClientInterceptor in retry_interceptor.go, for
// etcd-io/etcd#11954), and Lease.KeepAliveOnce opens a stream for every
// call: a claim renewed every TTL/10 would cost a bcrypt and a Raft write
// per renewal, and a fleet of password users would be bounded by the
// members' CPU. Credentials instead hands clientv3 no password at all and
// attaches the token itself, as gRPC per-RPC credentials:
//
//   - Authenticate runs once, when the connection is made, so that a wrong
//     password still fails at connect time.
//   - A unary call refused for its token (invalid or expired, issued before
//     an auth change, or missing) authenticates again and is sent once
//     more, as clientv3 does: etcd checks the token before it proposes
//     anything, so the refused call had no effect. If authenticating fails,
//     that failure is the call's error (a changed password says so, once).
//   - Streams carry the token too, and etcd checks it: a watch when it is
//     created (v3rpc/watch.go, isWatchPermitted), a lease renewal on every
//     keep-alive (etcdserver's LeaseRenew, checkLeaseRenew). A stream that
//     etcd ends, or a watch it cancels, for its token marks the token
//     stale, and the next stream opened (the keeper's next renewal, the
//     watcher's next attempt) authenticates first. A member forgets a simple
//     token not used for --auth-token-ttl (300 s by default) and a JWT
//     expires whether used or not, so a watch, which lives long and is
//     reopened rarely, is also opened with a token at most ReuseFor old.
package etcdauth

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// ReuseFor is how old a token may be when a watch is opened with it. It is
// well inside etcd's shortest practical token lifetime, and long enough that
// a short run (connect, watch its own key, release) authenticates once.
const ReuseFor = 10 * time.Second

const (
	authenticateMethod = "/etcdserverpb.Auth/Authenticate"
	watchMethod        = "/etcdserverpb.Watch/Watch"
)

// Credentials authenticates as one etcd user and attaches its token to every
// request of the connection it is dialled into (see DialOptions).
type Credentials struct {
	user, password string

	// refresh serializes Authenticate calls, so that requests refused
	// together authenticate once.
	refresh sync.Mutex

	mu       sync.Mutex
	token    string    // "" until authenticated, or while auth is disabled
	issued   time.Time // when token was obtained
	stale    bool      // a watch was cancelled for the token
	disabled bool      // etcd said authentication is not enabled
	count    int       // Authenticate calls sent, for tests and benchmarks
}

// New returns credentials for user and password; nothing is sent until
// Authenticate.
func New(user, password string) *Credentials {
	return &Credentials{user: user, password: password}
}

// DialOptions are the gRPC options that make a connection use c: add them to
// clientv3.Config.DialOptions (and leave Config.Username empty).
func (c *Credentials) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithPerRPCCredentials(perRPC{c}),
		grpc.WithChainUnaryInterceptor(c.unary),
		grpc.WithChainStreamInterceptor(c.stream),
	}
}

// Authenticate obtains a token over conn. A cluster without authentication
// enabled is not an error: requests then go without a token. Errors are
// etcd's (rpctypes.ErrAuthFailed for a wrong user or password).
func (c *Credentials) Authenticate(ctx context.Context, conn grpc.ClientConnInterface) error {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	return c.authenticate(ctx, conn)
}

// Authentications is the number of Authenticate requests sent so far.
func (c *Credentials) Authentications() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// authenticate sends one Authenticate; c.refresh must be held.
func (c *Credentials) authenticate(ctx context.Context, conn grpc.ClientConnInterface) error {
	c.mu.Lock()
	c.count++
	c.mu.Unlock()
	resp, err := pb.NewAuthClient(conn).Authenticate(ctx, &pb.AuthenticateRequest{Name: c.user, Password: c.password})
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case errors.Is(rpctypes.Error(err), rpctypes.ErrAuthNotEnabled):
		c.token, c.disabled, c.stale = "", true, false
		return nil
	case err != nil:
		return rpctypes.Error(err)
	}
	c.token, c.issued, c.stale, c.disabled = resp.Token, time.Now(), false, false
	return nil
}

// current returns the token, whether it is usable (not known to be
// refused), and whether it is fresh enough to open a watch with.
func (c *Credentials) current() (token string, usable, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	usable = !c.stale && (c.disabled || c.token != "")
	return c.token, usable, usable && (c.disabled || time.Since(c.issued) <= ReuseFor)
}

// renew authenticates again unless another request already has since used
// was refused.
func (c *Credentials) renew(ctx context.Context, conn grpc.ClientConnInterface, used string) error {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	c.mu.Lock()
	done := c.token != used && !c.stale
	c.mu.Unlock()
	if done {
		return nil
	}
	return c.authenticate(ctx, conn)
}

func (c *Credentials) markStale(used string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == used {
		c.stale = true
	}
}

// refused reports whether etcd refused a request for its token.
func refused(err error) bool {
	err = rpctypes.Error(err)
	return errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrAuthOldRevision) ||
		errors.Is(err, rpctypes.ErrUserEmpty)
}

// cancelledForToken reports whether a watch's cancel reason is one of the
// token refusals (etcd sends them as the text of the gRPC error).
func cancelledForToken(reason string) bool {
	return reason == rpctypes.ErrGRPCInvalidAuthToken.Error() || reason == rpctypes.ErrGRPCAuthOldRevision.Error() ||
		reason == rpctypes.ErrGRPCUserEmpty.Error()
}

func (c *Credentials) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == authenticateMethod {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	used, usable, _ := c.current()
	if !usable {
		// A stream was refused for this token: authenticate first. On
		// failure the call goes with the old token and reports its refusal.
		if err := c.renew(ctx, cc, used); err == nil {
			used, _, _ = c.current()
		}
	}
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err == nil || !refused(err) {
		return err
	}
	// Returning the refusal would make clientv3's retry loop send the call
	// again and again (it would refresh a token it does not have); the
	// failure to authenticate is the real error.
	if rerr := c.renew(ctx, cc, used); rerr != nil {
		return rerr
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *Credentials) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	used, usable, fresh := c.current()
	if !usable || (method == watchMethod && !fresh) {
		// On failure the stream opens with the old token; etcd then
		// refuses it and the next attempt tries again.
		_ = c.renew(ctx, cc, used)
		used, _, _ = c.current()
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &refusalWatcher{ClientStream: s, c: c, used: used}, nil
}

// refusalWatcher notices streams that etcd ends, and watches it cancels,
// because of their token, and marks the token stale.
type refusalWatcher struct {
	grpc.ClientStream
	c    *Credentials
	used string
}

func (s *refusalWatcher) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch wr, ok := m.(*pb.WatchResponse); {
	case err != nil && refused(err):
		s.c.markStale(s.used)
	case err == nil && ok && wr.Canceled && cancelledForToken(wr.CancelReason):
		s.c.markStale(s.used)
	}
	return err
}

// perRPC attaches the current token to each request.
type perRPC struct{ c *Credentials }

func (p perRPC) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	token, _, _ := p.c.current()
	if token == "" {
		return nil, nil
	}
	return map[string]string{rpctypes.TokenFieldNameGRPC: token}, nil
}

// RequireTransportSecurity is false, as in clientv3: etcd accepts passwords
// over plain connections, and whether to use TLS is the user's choice.
func (perRPC) RequireTransportSecurity() bool { return false }
