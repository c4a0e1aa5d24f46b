package cmd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/claim"
)

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
