package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// Server is one running etcd member. It is safe for concurrent use.
type Server struct {
	etcd       *embed.Etcd
	name       string
	quiet      *atomic.Bool // set on Close: shutdown noise is not logged
	clientURLs []string
	errc       chan error
	closing    chan struct{}
	closeOnce  sync.Once
	watchDone  chan struct{}
}

// Start starts an etcd member and returns once it has joined its cluster and
// serves clients, so that a caller can use it at once. With a multi-member
// InitialCluster that needs a quorum of members to be starting too, so start
// them concurrently. ctx bounds only that wait: the running member lives
// until Close. If the member fails to start, or ctx ends first, everything
// Start opened is closed again and the error says why; an address in use
// names the URL.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start etcd member %q: %w: %w", cfg.Name, ErrInvalidConfig, err)
	}
	closing := new(atomic.Bool)
	ecfg, err := embedConfig(cfg, closing)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %q: %w", cfg.Name, err)
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %q: %w", cfg.Name, describeListenError(cfg, err))
	}

	// embed.Etcd.Close waits for the client servers, which start only when
	// the member is ready or stopping; so before it is ready, stop the
	// member first or Close never returns.
	abort := func() {
		closing.Store(true)
		e.Server.HardStop()
		e.Close()
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		abort()
		if err == nil {
			err = errors.New("a listener stopped before the member was ready")
		}
		return nil, fmt.Errorf("start etcd member %q: %w", cfg.Name, err)
	case <-e.Server.StopNotify():
		abort()
		return nil, fmt.Errorf("start etcd member %q: server stopped before it was ready (see its log)", cfg.Name)
	case <-ctx.Done():
		abort()
		return nil, fmt.Errorf("start etcd member %q: waiting to join the cluster: %w", cfg.Name, context.Cause(ctx))
	}

	s := &Server{
		etcd:       e,
		quiet:      closing,
		name:       cfg.Name,
		clientURLs: clientURLs(cfg.ListenClientURLs, e.Clients),
		errc:       make(chan error, 1),
		closing:    make(chan struct{}),
		watchDone:  make(chan struct{}),
	}
	go s.watch()
	return s, nil
}

// Name returns the member's name, as in InitialCluster.
func (s *Server) Name() string { return s.name }

// ClientURLs returns the URLs the member actually listens on for clients, in
// the order of Config.ListenClientURLs, with port 0 replaced by the port the
// kernel picked. These, not the advertised URLs, are what to dial.
func (s *Server) ClientURLs() []string {
	return append([]string(nil), s.clientURLs...)
}

// Err delivers at most one error: the first fatal one after Start returned (a
// listener failed, or the member stopped on its own, for example because it
// was removed from the cluster). The member is not usable afterwards; call
// Close. Close itself sends nothing, and the channel is never closed.
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the member gracefully: it stops accepting clients, gives
// in-flight requests etcd's request timeout to finish, transfers leadership
// if it is the leader of a larger cluster, and closes the data files. It
// returns when all of that is done. Calling it again does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.quiet.Store(true)
		s.etcd.Close()
		<-s.watchDone
	})
}

// watch forwards the first fatal error to errc until Close.
func (s *Server) watch() {
	defer close(s.watchDone)
	stopped := s.etcd.Server.StopNotify()
	for {
		select {
		case err, ok := <-s.etcd.Err():
			if !ok {
				return
			}
			if err != nil {
				s.report(fmt.Errorf("etcd member %q: %w", s.name, err))
			}
		case <-stopped:
			stopped = nil
			select {
			case <-s.closing:
			default:
				s.report(fmt.Errorf("etcd member %q stopped", s.name))
			}
		case <-s.closing:
			return
		}
	}
}

func (s *Server) report(err error) {
	select {
	case <-s.closing:
	case s.errc <- err:
	default:
	}
}

// embedConfig translates cfg (validated, with defaults) into etcd's.
// Once closing is set, the logger drops etcd's reports of its own listeners
// stopping.
func embedConfig(cfg Config, closing *atomic.Bool) (*embed.Config, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	var err error
	if ec.ListenClientUrls, err = urls(cfg.ListenClientURLs); err != nil {
		return nil, err
	}
	if ec.AdvertiseClientUrls, err = urls(cfg.AdvertiseClientURLs); err != nil {
		return nil, err
	}
	if ec.ListenPeerUrls, err = urls(cfg.ListenPeerURLs); err != nil {
		return nil, err
	}
	if ec.AdvertisePeerUrls, err = urls(cfg.InitialAdvertisePeerURLs); err != nil {
		return nil, err
	}
	ec.InitialCluster = cfg.InitialCluster
	ec.ClusterState = cfg.InitialClusterState
	ec.InitialClusterToken = cfg.InitialClusterToken
	if cfg.TickMs != 0 {
		ec.TickMs = cfg.TickMs
	}
	if cfg.ElectionMs != 0 {
		ec.ElectionMs = cfg.ElectionMs
	}
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	tlsInfo(&ec.ClientTLSInfo, cfg.ClientTLS)
	tlsInfo(&ec.PeerTLSInfo, cfg.PeerTLS)

	level, err := zapLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	ec.LogLevel = cfg.LogLevel
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newLogger(out, level, closing))
	return ec, nil
}

func tlsInfo(dst *transport.TLSInfo, f TLSFiles) {
	if f.empty() {
		return
	}
	dst.CertFile = f.CertFile
	dst.KeyFile = f.KeyFile
	dst.TrustedCAFile = f.TrustedCAFile
	dst.ClientCertAuth = f.ClientCertAuth
}

func urls(ss []string) ([]url.URL, error) {
	out := make([]url.URL, len(ss))
	for i, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("parse URL %q: %w", s, err)
		}
		out[i] = *u
	}
	return out, nil
}

// zapLevel accepts the levels etcd documents for --log-level.
func zapLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug", "info", "warn", "error", "panic", "fatal":
		return logutil.ConvertToZapLevel(s), nil
	}
	return 0, fmt.Errorf("--log-level %q: want debug, info, warn, error, panic or fatal", s)
}

// clientURLs pairs each listen URL with the listener etcd opened for it,
// replacing port 0 with the real port. etcd opens one listener per distinct
// host:port, in no particular order, so listeners are matched by address:
// first those with a fixed port, then port-0 URLs by IP.
func clientURLs(listen []string, lns []net.Listener) []string {
	type tcp struct {
		ip   net.IP
		port int
	}
	var avail []tcp
	for _, ln := range lns {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			avail = append(avail, tcp{a.IP, a.Port})
		}
	}
	fixed := map[int]bool{}
	for _, s := range listen {
		if u, err := url.Parse(s); err == nil && u.Port() != "0" && u.Port() != "" {
			if p, err := strconv.Atoi(u.Port()); err == nil {
				fixed[p] = true
			}
		}
	}
	assigned := map[string]string{} // listen host:port (port 0) -> real port
	out := make([]string, 0, len(listen))
	for _, s := range listen {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() != "0" {
			out = append(out, s)
			continue
		}
		port, ok := assigned[u.Host]
		if !ok {
			want := net.ParseIP(u.Hostname())
			for i, a := range avail {
				if fixed[a.port] || (want != nil && !want.Equal(a.ip)) {
					continue
				}
				port = strconv.Itoa(a.port)
				avail = append(avail[:i], avail[i+1:]...)
				break
			}
			assigned[u.Host] = port
		}
		if port == "" {
			out = append(out, s)
			continue
		}
		r := *u
		r.Host = net.JoinHostPort(u.Hostname(), port)
		out = append(out, r.String())
	}
	return out
}

// describeListenError makes "address already in use" name the URL that was
// being bound, which is what the user wrote and can change.
func describeListenError(cfg Config, err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "listen" || op.Addr == nil {
		return err
	}
	what := "listen on " + op.Addr.String()
	for _, set := range []struct {
		flag string
		urls []string
	}{{"--listen-client-urls", cfg.ListenClientURLs}, {"--listen-peer-urls", cfg.ListenPeerURLs}} {
		for _, s := range set.urls {
			if u, perr := url.Parse(s); perr == nil && sameAddr(u, op.Addr) {
				what = fmt.Sprintf("listen on %s (%s)", s, set.flag)
			}
		}
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: %w", what, syscall.EADDRINUSE)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func sameAddr(u *url.URL, a net.Addr) bool {
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		return a.String() == u.Host+u.Path || a.String() == u.Host
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.Equal(ta.IP) && u.Port() == strconv.Itoa(ta.Port)
}
