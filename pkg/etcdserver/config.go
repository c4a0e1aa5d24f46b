package etcdserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// Defaults shared by the claimctl-server flags and Config, so that the binary's
// --help and the library agree on what an unset field means. They are etcd's
// own defaults except that the listeners are on 127.0.0.1 rather than
// localhost, so that a fresh install is reachable only from the same machine
// and does not depend on how localhost resolves.
const (
	DefaultName                = "default"
	DefaultClientURL           = "http://127.0.0.1:2379"
	DefaultPeerURL             = "http://127.0.0.1:2380"
	DefaultInitialClusterState = ClusterStateNew
	DefaultInitialClusterToken = "etcd-cluster"
	DefaultLogLevel            = "error"
)

// Values of Config.InitialClusterState, as etcd spells them.
const (
	// ClusterStateNew bootstraps a new cluster from InitialCluster.
	ClusterStateNew = "new"
	// ClusterStateExisting joins (or rejoins) a cluster that already exists.
	ClusterStateExisting = "existing"
)

// ErrInvalidConfig is wrapped by every error that Config.Validate returns, so
// that a caller can tell "the configuration is wrong" (a usage error) from
// "the member could not start" (an operational one).
var ErrInvalidConfig = errors.New("invalid configuration")

// TLSFiles names the PEM files of one TLS endpoint (client or peer). The zero
// value means plain text; it is used only for https:// URLs.
type TLSFiles struct {
	// CertFile and KeyFile are the server's certificate and private key.
	CertFile, KeyFile string
	// TrustedCAFile verifies the certificates presented by the other side.
	TrustedCAFile string
	// ClientCertAuth requires the other side to present a certificate
	// signed by TrustedCAFile.
	ClientCertAuth bool
}

func (f TLSFiles) empty() bool {
	return f.CertFile == "" && f.KeyFile == "" && f.TrustedCAFile == "" && !f.ClientCertAuth
}

// Config is the small subset of etcd's embed.Config that claimctl needs: enough
// to run a single member, to form or join a cluster, and to make tests fast.
// URLs are strings, as on etcd's command line, so that the flag layer needs no
// parsing of its own; Validate reports bad ones.
type Config struct {
	// Name is the member's name in the cluster (default DefaultName).
	Name string
	// DataDir holds the member's WAL and database. Required: a member
	// without stable storage would lose every claim on restart.
	DataDir string

	// ListenClientURLs are where clients connect (default DefaultClientURL).
	// Port 0 picks a free port; Server.ClientURLs reports the real one.
	ListenClientURLs []string
	// AdvertiseClientURLs are published to the cluster for clients to use
	// (default ListenClientURLs). They are published as given, so with port
	// 0 they say port 0: use Server.ClientURLs to find the member.
	AdvertiseClientURLs []string
	// ListenPeerURLs are where the other members connect (default
	// DefaultPeerURL).
	ListenPeerURLs []string
	// InitialAdvertisePeerURLs are published for the other members to use
	// (default ListenPeerURLs).
	InitialAdvertisePeerURLs []string
	// InitialCluster is "name=peerURL,name=peerURL,..." (default: this
	// member alone, Name=InitialAdvertisePeerURLs). Ignored once DataDir
	// holds a member.
	InitialCluster string
	// InitialClusterState is ClusterStateNew (default) or
	// ClusterStateExisting.
	InitialClusterState string
	// InitialClusterToken keeps two clusters bootstrapped from the same URLs
	// apart (default DefaultInitialClusterToken).
	InitialClusterToken string

	// TickMs is the heartbeat interval and ElectionMs the election timeout,
	// in milliseconds; 0 keeps etcd's defaults (100 and 1000). ElectionMs
	// must be at least 5*TickMs. They also set the minimum lease TTL, to
	// which the server silently raises shorter TTLs: 1.5 x ElectionMs
	// (counted in whole ticks) rounded up to whole seconds, i.e. 2 s with
	// the defaults and 1 s with TickMs 50, ElectionMs 500.
	TickMs, ElectionMs uint

	// UnsafeNoFsync skips fsync: much faster, loses data on a power cut.
	// For tests only.
	UnsafeNoFsync bool

	// ClientTLS and PeerTLS are used for https:// client and peer URLs.
	ClientTLS, PeerTLS TLSFiles

	// LogLevel is etcd's log level: debug, info, warn, error (default),
	// panic or fatal. The default keeps a healthy server silent.
	LogLevel string
	// LogOutput receives etcd's JSON log lines (default os.Stderr). It may
	// be written from many goroutines; Start serialises the writes.
	LogOutput io.Writer
}

// withDefaults returns c with every unset field filled in.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if len(c.ListenClientURLs) == 0 {
		c.ListenClientURLs = []string{DefaultClientURL}
	}
	if len(c.AdvertiseClientURLs) == 0 {
		c.AdvertiseClientURLs = c.ListenClientURLs
	}
	if len(c.ListenPeerURLs) == 0 {
		c.ListenPeerURLs = []string{DefaultPeerURL}
	}
	if len(c.InitialAdvertisePeerURLs) == 0 {
		c.InitialAdvertisePeerURLs = c.ListenPeerURLs
	}
	if c.InitialCluster == "" {
		parts := make([]string, len(c.InitialAdvertisePeerURLs))
		for i, u := range c.InitialAdvertisePeerURLs {
			parts[i] = c.Name + "=" + u
		}
		c.InitialCluster = strings.Join(parts, ",")
	}
	if c.InitialClusterState == "" {
		c.InitialClusterState = DefaultInitialClusterState
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = DefaultInitialClusterToken
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	return c
}

// Validate reports the first problem with c after defaults are applied, as
// an error wrapping ErrInvalidConfig and naming the offending setting by its
// claimctl-server flag. Start calls it too; call it first to tell a usage
// error from a failure to start.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c Config) validate() error {
	if c.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	if strings.ContainsAny(c.Name, "=,") {
		return fmt.Errorf("--name %q must not contain '=' or ','", c.Name)
	}
	lcurls, err := parseURLs("--listen-client-urls", c.ListenClientURLs, true)
	if err != nil {
		return err
	}
	if _, err := parseURLs("--listen-peer-urls", c.ListenPeerURLs, true); err != nil {
		return err
	}
	acurls, err := parseURLs("--advertise-client-urls", c.AdvertiseClientURLs, false)
	if err != nil {
		return err
	}
	apurls, err := parseURLs("--initial-advertise-peer-urls", c.InitialAdvertisePeerURLs, false)
	if err != nil {
		return err
	}
	for _, u := range append(acurls, apurls...) {
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("advertised URL %s is a wildcard address: set --advertise-client-urls and --initial-advertise-peer-urls to addresses others can reach", u.Redacted())
		}
	}
	cluster, err := types.NewURLsMap(c.InitialCluster)
	if err != nil {
		return fmt.Errorf("--initial-cluster %q: %w", c.InitialCluster, err)
	}
	if _, ok := cluster[c.Name]; !ok {
		return fmt.Errorf("--initial-cluster %q has no member named %q (--name)", c.InitialCluster, c.Name)
	}
	switch c.InitialClusterState {
	case ClusterStateNew, ClusterStateExisting:
	default:
		return fmt.Errorf("--initial-cluster-state %q: want %q or %q", c.InitialClusterState, ClusterStateNew, ClusterStateExisting)
	}
	tick, election := c.TickMs, c.ElectionMs
	if tick == 0 {
		tick = 100
	}
	if election == 0 {
		election = 1000
	}
	if election < 5*tick {
		return fmt.Errorf("--election-timeout %dms must be at least 5 times --heartbeat-interval %dms", election, tick)
	}
	if election > 50000 {
		return fmt.Errorf("--election-timeout %dms is above etcd's maximum of 50000ms", election)
	}
	for _, u := range lcurls {
		if (u.Scheme == "https" || u.Scheme == "unixs") && (c.ClientTLS.CertFile == "" || c.ClientTLS.KeyFile == "") {
			return fmt.Errorf("--listen-client-urls %s needs --cert-file and --key-file", u.Redacted())
		}
	}
	if _, err := zapLevel(c.LogLevel); err != nil {
		return err
	}
	return nil
}

// parseURLs parses etcd URLs, accepting the schemes etcd does. Listen URLs
// must name an IP address (or localhost), because etcd binds them as given.
func parseURLs(flag string, ss []string, listen bool) ([]url.URL, error) {
	out := make([]url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, s, err)
		}
		switch u.Scheme {
		case "http", "https":
			host, port, err := net.SplitHostPort(u.Host)
			if err != nil {
				return nil, fmt.Errorf("%s %q: want scheme://host:port: %w", flag, s, err)
			}
			if host == "" {
				return nil, fmt.Errorf("%s %q: empty host", flag, s)
			}
			if listen && host != "localhost" && net.ParseIP(host) == nil {
				return nil, fmt.Errorf("%s %q: a listen URL needs an IP address, not a host name", flag, s)
			}
			if port == "" {
				return nil, fmt.Errorf("%s %q: empty port", flag, s)
			}
			if u.Path != "" && u.Path != "/" {
				return nil, fmt.Errorf("%s %q: unexpected path %q", flag, s, u.Path)
			}
		case "unix", "unixs":
			if u.Host == "" && u.Path == "" {
				return nil, fmt.Errorf("%s %q: empty socket path", flag, s)
			}
		default:
			return nil, fmt.Errorf("%s %q: scheme must be http, https, unix or unixs", flag, s)
		}
		out = append(out, *u)
	}
	return out, nil
}
