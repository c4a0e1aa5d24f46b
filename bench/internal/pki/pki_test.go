package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// TestGenerate checks that the server certificate verifies for every name
// a client may dial (loopback, localhost, a slowlink socket) and that each
// client certificate carries its user as common name.
func TestGenerate(t *testing.T) {
	set, err := Generate(t.TempDir(), "root", "bench")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(set.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	srv, err := tls.LoadX509KeyPair(set.Server.Cert, set.Server.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(srv.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost", "link.sock"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("server certificate for %s (usage %v): %v", name, usage, err)
			}
		}
	}
	for _, cn := range []string{"root", "bench"} {
		p, ok := set.Clients[cn]
		if !ok {
			t.Fatalf("no client certificate for %s", cn)
		}
		c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Subject.CommonName != cn {
			t.Errorf("client certificate CN = %q, want %q", leaf.Subject.CommonName, cn)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("client certificate %s: %v", cn, err)
		}
	}
}
