//go:build linux

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/etcdserver"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// inPKI is a throw-away certificate authority with a server certificate for
// 127.0.0.1 and a client certificate, as PEM files in one directory, plus a
// second, unrelated CA with its own client certificate.
type inPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	otherCA, otherClientCert, otherClientKey         string
}

// inNewPKI generates the PKI with ECDSA P-256 keys valid for an hour.
func inNewPKI(t *testing.T) inPKI {
	t.Helper()
	dir := t.TempDir()
	serial := int64(0)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// issue signs a certificate for key with parent (nil: self-signed CA).
	issue := func(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
		k := newKey()
		return issue(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, k, nil, nil), k
	}
	leaf := func(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: name}, KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
		}
		c := issue(tmpl, k, ca, caKey)
		return write(name+".pem", "CERTIFICATE", c.Raw), write(name+"-key.pem", "EC PRIVATE KEY", keyDER(k))
	}

	var p inPKI
	ca, caKey := newCA("claimctl test CA")
	p.ca = write("ca.pem", "CERTIFICATE", ca.Raw)
	p.serverCert, p.serverKey = leaf("server", ca, caKey, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", ca, caKey, x509.ExtKeyUsageClientAuth)
	other, otherKey := newCA("some other CA")
	p.otherCA = write("other-ca.pem", "CERTIFICATE", other.Raw)
	p.otherClientCert, p.otherClientKey = leaf("other-client", other, otherKey, x509.ExtKeyUsageClientAuth)
	return p
}

// inStartTLSMember starts an embedded member that serves clients only over
// TLS and requires a client certificate signed by pki.ca. It returns the
// client URL and an admin client that presents the client certificate.
func inStartTLSMember(t *testing.T, pki inPKI) (string, *clientv3.Client) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), etcdtest.StartTimeout)
	defer cancel()
	srv, err := etcdserver.Start(c, etcdserver.Config{
		Name:             "tls",
		DataDir:          t.TempDir(),
		ListenClientURLs: []string{"https://127.0.0.1:0"},
		ListenPeerURLs:   []string{"http://127.0.0.1:0"},
		TickMs:           etcdtest.TickMs,
		ElectionMs:       etcdtest.ElectionMs,
		UnsafeNoFsync:    true,
		ClientTLS: etcdserver.TLSFiles{CertFile: pki.serverCert, KeyFile: pki.serverKey,
			TrustedCAFile: pki.ca, ClientCertAuth: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	url := srv.ClientURLs()[0]
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("TLS member serves %q, want an https URL", url)
	}

	cert, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return url, cli
}

// TestTLSWithClientCertificates: against a member that requires client
// certificates, claimctl works with the TLS files given as flags, as
// CLAIMCTL_TLS_* variables and as ETCDCTL_* variables; a missing file is a
// configuration error (78); a server that cannot be verified, or that
// refuses claimctl's certificate (none, or one from another CA), is
// unavailable (69) with a message that names the TLS problem. Nothing is
// left behind.
func TestTLSWithClientCertificates(t *testing.T) {
	pki := inNewPKI(t)
	url, admin := inStartTLSMember(t, pki)
	eps := []string{url}
	flags := []string{"--cacert", pki.ca, "--cert", pki.clientCert, "--key", pki.clientKey}

	t.Run("flags", func(t *testing.T) {
		tok := strings.TrimSpace(inExpect(t, 0, eps, nil, append(flags, "acquire", "tls-flags")...).stdout)
		st := inExpect(t, 0, eps, nil, append(flags, "status", "-o", "json", "tls-flags")...)
		if !strings.Contains(st.stdout, `"owner": "e2e@`) {
			t.Fatalf("status over TLS does not show the holder:\n%s", st.stdout)
		}
		inExpect(t, 0, eps, nil, append(flags, "renew", tok)...)
		inExpect(t, 0, eps, nil, append(flags, "release", tok)...)
	})

	t.Run("CLAIMCTL_TLS variables", func(t *testing.T) {
		env := []string{"CLAIMCTL_TLS_CACERT=" + pki.ca, "CLAIMCTL_TLS_CERT=" + pki.clientCert, "CLAIMCTL_TLS_KEY=" + pki.clientKey}
		inExpect(t, 0, eps, env, "run", "tls-env", "--", "true")
		tok := strings.TrimSpace(inExpect(t, 0, eps, env, "acquire", "tls-env").stdout)
		inExpect(t, 0, eps, append(env, "CLAIMCTL_TOKEN="+tok), "release")
	})

	t.Run("ETCDCTL variables", func(t *testing.T) {
		env := []string{"ETCDCTL_CACERT=" + pki.ca, "ETCDCTL_CERT=" + pki.clientCert, "ETCDCTL_KEY=" + pki.clientKey}
		inExpect(t, 0, eps, env, "list", "-o", "json")
	})

	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nosuch.pem")
		for _, args := range [][]string{
			{"--cacert", missing, "--cert", pki.clientCert, "--key", pki.clientKey},
			{"--cacert", pki.ca, "--cert", missing, "--key", pki.clientKey},
			{"--cacert", pki.ca, "--cert", pki.clientCert, "--key", missing},
		} {
			r := inExpect(t, 78, eps, nil, append(args, "acquire", "tls-missing")...)
			want := "claimctl: TLS configuration: open " + missing + ": no such file or directory; check --cacert, --cert and --key\n"
			if r.stderr != want {
				t.Errorf("%v: stderr %q, want %q", args, r.stderr, want)
			}
		}
		r := inExpect(t, 78, eps, []string{"CLAIMCTL_TLS_CERT=" + missing, "CLAIMCTL_TLS_KEY=" + pki.clientKey}, "acquire", "tls-missing")
		if !strings.Contains(r.stderr, "open "+missing) {
			t.Errorf("a missing CLAIMCTL_TLS_CERT file is not named: %q", r.stderr)
		}
	})

	// Each of these fails the TLS handshake: 69 (the outcome is unknown to
	// claimctl, as for any etcd it cannot talk to), within the timeouts, and
	// the message says that it is TLS and what to check.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong CA", []string{"--cacert", pki.otherCA, "--cert", pki.clientCert, "--key", pki.clientKey},
			"x509: certificate signed by unknown authority"},
		{"no client certificate", []string{"--cacert", pki.ca}, "certificate required"},
		{"client certificate from another CA", []string{"--cacert", pki.ca, "--cert", pki.otherClientCert, "--key", pki.otherClientKey},
			"unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := inExpect(t, 69, eps, nil, append(tc.args, "acquire", "tls-refused")...)
			if !strings.HasPrefix(r.stderr, "claimctl: acquire tls-refused: etcd unavailable at "+url+": ") ||
				!strings.Contains(r.stderr, "TLS") || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr does not name the TLS problem (%q):\n%s", tc.want, r.stderr)
			}
			if r.took > 5*time.Second {
				t.Fatalf("took %v; want it within dial + command timeout", r.took)
			}
		})
	}

	t.Run("plain text to a TLS port", func(t *testing.T) {
		r := inExpect(t, 69, []string{strings.Replace(url, "https://", "http://", 1)}, nil, "acquire", "tls-plain")
		if !strings.Contains(r.stderr, "etcd unavailable") {
			t.Fatalf("stderr: %s", r.stderr)
		}
	})

	keys, err := admin.Get(ctx(t), "claimctl/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	leases, err := admin.Leases(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Kvs) != 0 || len(leases.Leases) != 0 {
		t.Fatalf("left behind: %d keys, %d leases", len(keys.Kvs), len(leases.Leases))
	}
}
