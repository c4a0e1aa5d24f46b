// Package pki makes the certificates of a TLS cluster for the benchmarks: a
// CA, one server certificate every member uses (for clients and for its
// peers), and client certificates whose common names are etcd users. They
// are generated at start-up into a temporary directory and never kept.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ServerNames are the names the server certificate is valid for: loopback
// for the members and their peers, and "link.sock", the name etcd's client
// checks when it reaches a member through a Unix socket
// (unixs:///dir/link.sock, as slowlink's endpoints are).
var ServerNames = []string{"localhost", "link.sock"}

// Pair is a certificate and its key, as PEM files.
type Pair struct{ Cert, Key string }

// Set is the files of one cluster's PKI.
type Set struct {
	CA     string
	Server Pair
	// Clients are the client certificates by common name (the etcd user
	// a member with --client-cert-auth and auth enabled sees).
	Clients map[string]Pair
}

// Generate writes a CA, a server certificate and one client certificate
// per common name into dir. ECDSA P-256 keys, as etcd's own docs generate
// with cfssl.
func Generate(dir string, clients ...string) (Set, error) {
	set := Set{CA: filepath.Join(dir, "ca.pem"), Clients: map[string]Pair{}}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return set, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "claimbench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return set, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return set, err
	}
	if err := writePEM(set.CA, "CERTIFICATE", caDER); err != nil {
		return set, err
	}
	serial := int64(2)
	issue := func(name, cn string, server bool) (Pair, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Pair{}, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		serial++
		if server {
			// Members present it to clients and to each other, so it
			// serves both purposes.
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
			tmpl.DNSNames = ServerNames
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return Pair{}, err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return Pair{}, err
		}
		p := Pair{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
		if err := writePEM(p.Cert, "CERTIFICATE", der); err != nil {
			return Pair{}, err
		}
		return p, writePEM(p.Key, "PRIVATE KEY", kder)
	}
	if set.Server, err = issue("server", "claimbench member", true); err != nil {
		return set, err
	}
	for _, cn := range clients {
		p, err := issue("client-"+cn, cn, false)
		if err != nil {
			return set, err
		}
		set.Clients[cn] = p
	}
	return set, nil
}

func writePEM(path, kind string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
