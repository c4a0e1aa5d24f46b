package cmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdauth"
	"github.com/claimctl/claimctl/pkg/iostreams"
)

// Factory gives commands what they share: streams, build info, and lazily
// the configuration and an etcd connection, so that commands that do not
// need etcd (help, version, completion) never dial it.
type Factory struct {
	IO     *iostreams.IOStreams
	Build  BuildInfo
	Getenv func(string) string

	// ConfigPath, Quiet and LogFormatFlag are bound to global flags.
	ConfigPath    string
	Quiet         bool
	LogFormatFlag string

	cfg *Config

	// The event log (see Log) and what every record says.
	log           *slog.Logger
	logFormatUsed string
	logColor      bool
	logFields     []any
	// waitStarted and heldSince time the claim, for the log's waited_ms and
	// held_ms: when the acquire began and when the hold was verified.
	waitStarted, heldSince time.Time
	// metrics writes the outcome to --metrics-file, if one is set.
	metrics *runMetrics
	// connFailed is set when an etcd connection is closed while every
	// attempt to connect had failed (gRPC's TRANSIENT_FAILURE), as opposed
	// to still connecting or connected but unanswered.
	connFailed bool
}

// Config loads the configuration for cmd once.
func (f *Factory) Config(cmd *cobra.Command) (*Config, error) {
	if f.cfg != nil {
		return f.cfg, nil
	}
	cfg, err := loadConfig(cmd.Flags(), f.ConfigPath, f.Getenv)
	if err != nil {
		return nil, err
	}
	f.IO.SetColorMode(cfg.Color, f.Getenv("NO_COLOR") != "")
	f.cfg = cfg
	return cfg, nil
}

// Claims connects to etcd and returns a claim client and a function that
// closes the connection.
func (f *Factory) Claims(cmd *cobra.Command) (*claim.Client, func(), error) {
	cfg, err := f.Config(cmd)
	if err != nil {
		return nil, nil, err
	}
	if err := claim.ValidatePrefix(cfg.Prefix); err != nil {
		return nil, nil, withCode(ExitUsage, err)
	}
	etcd, err := connect(cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := claim.New(etcd, claim.Options{Prefix: cfg.Prefix, RequestTimeout: cfg.CommandTimeout})
	if err != nil {
		etcd.Close()
		return nil, nil, withCode(ExitUsage, err)
	}
	return c, func() {
		if conn := etcd.ActiveConnection(); conn != nil && conn.GetState() == connectivity.TransientFailure {
			f.connFailed = true
		}
		etcd.Close()
	}, nil
}

// connect builds the etcd client from a clientv3.ConfigSpec, as etcdctl
// does. The client dials lazily; every request is bounded by the command
// timeout, so an unreachable cluster fails within dial + command timeout.
func connect(cfg *Config) (*clientv3.Client, error) {
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, configError(errors.New("TLS configuration: a client certificate needs both --cert and --key; set both or neither"))
	}
	lg := zap.NewNop()
	ccfg, err := clientv3.NewClientConfig(clientSpec(cfg), lg)
	if err == nil && cfg.CACert != "" {
		err = checkCACert(cfg.CACert)
	}
	if err != nil {
		return nil, configError(fmt.Errorf("TLS configuration: %v; check --cacert, --cert and --key", err))
	}
	ccfg.Logger = lg
	ccfg.RejectOldCluster = false
	var creds *etcdauth.Credentials
	if cfg.User != "" {
		creds = etcdauth.New(cfg.User, cfg.Password)
		ccfg.DialOptions = append(ccfg.DialOptions, creds.DialOptions()...)
	}
	etcd, err := clientv3.New(*ccfg)
	if err != nil {
		return nil, classifyDialError(cfg, err)
	}
	if creds != nil {
		// As clientv3 would with Username set: a wrong password fails here.
		ctx, cancel := context.WithCancel(context.Background())
		if cfg.DialTimeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, cfg.DialTimeout)
		}
		err := creds.Authenticate(ctx, etcd.ActiveConnection())
		cancel()
		if err != nil {
			etcd.Close()
			return nil, classifyDialError(cfg, err)
		}
	}
	// The connection is otherwise made by the first request; starting it
	// now lets the handshake overlap with whatever the command does before
	// that request (holder metadata, the guardian's start).
	if conn := etcd.ActiveConnection(); conn != nil {
		conn.Connect()
	}
	return etcd, nil
}

// clientSpec is the etcd client configuration in etcdctl's terms, without
// the password: connect authenticates with pkg/etcdauth, once per process
// rather than once per stream as clientv3 would.
func clientSpec(cfg *Config) *clientv3.ConfigSpec {
	tlsFiles := cfg.CACert != "" || cfg.Cert != "" || cfg.Key != ""
	spec := &clientv3.ConfigSpec{
		Endpoints:        cfg.Endpoints,
		DialTimeout:      cfg.DialTimeout,
		KeepAliveTime:    2 * time.Second,
		KeepAliveTimeout: 2 * time.Second,
		Secure: &clientv3.SecureConfig{
			Cacert: cfg.CACert, Cert: cfg.Cert, Key: cfg.Key,
			InsecureSkipVerify: cfg.InsecureSkip,
			InsecureTransport:  !tlsFiles && !cfg.InsecureSkip,
		},
	}
	return spec
}

// checkCACert refuses a CA bundle without a single PEM block. etcd's client
// accepts such a file and then trusts no server at all, so every handshake
// would fail and claimctl would blame an unavailable etcd instead of naming
// the file. (Blocks that are not certificates are refused by the client.)
func checkCACert(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if block, _ := pem.Decode(b); block == nil {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// explainTLS names the TLS problem behind an "etcd unavailable" error. etcd's
// client waits for a usable connection until the request's deadline and then
// reports only that no answer came in time, so after a failure in which
// every connection attempt failed, claimctl repeats one TLS handshake itself
// (bounded by the dial timeout) to say what was wrong: an unknown CA, a
// client certificate that is missing or refused, or a server that does not
// speak TLS. It costs nothing on success, or when etcd is merely slow or
// unreachable.
func (f *Factory) explainTLS(err error) error {
	if !f.connFailed || f.cfg == nil || !errors.Is(err, claim.ErrUnavailable) {
		return err
	}
	ccfg, cerr := clientv3.NewClientConfig(clientSpec(f.cfg), zap.NewNop())
	if cerr != nil || ccfg.TLS == nil {
		return err
	}
	for _, ep := range f.cfg.Endpoints {
		if herr := probeTLS(ep, ccfg.TLS, f.cfg.DialTimeout); herr != nil {
			return fmt.Errorf("%w; the TLS handshake with %s failed: %v; check --cacert, --cert and --key", err, ep, herr)
		}
	}
	return err
}

// http2Preface is the client connection preface and an empty SETTINGS
// frame: a healthy etcd answers it at once.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"

// probeTLS performs a TLS handshake with a TCP endpoint that etcd's client
// reaches over TLS and returns the TLS error, if there is one. Failures that
// are not about TLS (refused, timed out) return nil: they are explained
// already.
func probeTLS(ep string, cfg *tls.Config, timeout time.Duration) error {
	addr := ep
	switch {
	case strings.HasPrefix(ep, "http://"), strings.HasPrefix(ep, "unix"):
		return nil // plain text, or a socket
	case strings.HasPrefix(ep, "https://"):
		addr = strings.TrimSuffix(strings.TrimPrefix(ep, "https://"), "/")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	c := cfg.Clone()
	if c.ServerName == "" {
		c.ServerName = host
	}
	c.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, c)
	if err != nil {
		return tlsError(err)
	}
	defer conn.Close()
	// With TLS 1.3 the server judges the client's certificate after the
	// client has finished its side of the handshake; the verdict comes with
	// the server's first bytes.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	_, _ = conn.Write([]byte(http2Preface))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return tlsError(err)
	}
	return nil
}

// tlsError returns err if it is about TLS (a certificate that does not
// verify, an alert from the server, a server that does not speak TLS), or
// nil.
func tlsError(err error) error {
	var op *net.OpError
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &op) && op.Op == "remote error",
		errors.As(err, &rh), errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return err
	}
	return nil
}

// classifyDialError maps errors from clientv3.New, which authenticates when
// a user is set.
func classifyDialError(cfg *Config, err error) error {
	return claim.ClassifyError("connect", cfg.Prefix, cfg.Endpoints, err)
}
