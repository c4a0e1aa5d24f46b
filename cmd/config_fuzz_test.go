package cmd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/claimctl/claimctl/pkg/claim"
)

// FuzzDuration: the config duration parser never panics, accepts exactly
// what time.ParseDuration accepts (after trimming spaces), refuses every
// non-string value, and says why in one line.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"5s", " 2m ", "1h30m", "0", "-1s", "1.5s", "5", "soon", "", "9223372036854775807ns", "1e3s", "\n5s\t"} {
		f.Add(s, int64(5))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		d, err := duration(s)
		want, werr := time.ParseDuration(strings.TrimSpace(s))
		switch {
		case (err == nil) != (werr == nil):
			t.Fatalf("duration(%q) = %v, %v; time.ParseDuration says %v, %v", s, d, err, want, werr)
		case err == nil && d != want:
			t.Fatalf("duration(%q) = %v, want %v", s, d, want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Fatalf("duration(%q): message is not one line: %q", s, err)
		}
		for _, v := range []any{n, int(n), float64(n), true, []any{s}, map[string]any{s: n}, nil} {
			if _, err := duration(v); err == nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("duration(%#v) = %v; want a one-line error for a value that is not a string", v, err)
			}
		}
		if got, err := duration(time.Duration(n)); err != nil || got != time.Duration(n) {
			t.Fatalf("duration(%v) = %v, %v", time.Duration(n), got, err)
		}
	})
}

// FuzzCheckEndpoint: the endpoint check never panics, and what it accepts
// is a socket URL or has a host and a port in range that etcd's client can
// dial.
func FuzzCheckEndpoint(f *testing.F) {
	for _, s := range []string{"127.0.0.1:2379", "http://127.0.0.1:2379", "https://etcd1:2379/", "unix:///tmp/s.sock", "unixs://s",
		"unix:rel", "localhost", "ftp://x:1", "http://[::1", "[::1]:2379", "http://h:0", "http://u@h:1", "http://h:1/x", "h:65536", ":1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ep string) {
		err := checkEndpoint(ep)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(ep, "\n") {
				t.Fatalf("checkEndpoint(%q): message is not one line: %q", ep, err)
			}
			return
		}
		for _, p := range []string{"unix://", "unixs://", "unix:", "unixs:"} {
			if rest, ok := strings.CutPrefix(ep, p); ok {
				if rest == "" {
					t.Fatalf("checkEndpoint accepted %q without a socket path", ep)
				}
				return
			}
		}
		if scheme, _, ok := strings.Cut(ep, "://"); ok && scheme != "http" && scheme != "https" {
			t.Fatalf("checkEndpoint accepted %q with scheme %q", ep, scheme)
		}
	})
}

// FuzzLoadConfig: a config file of any content never makes the loader
// panic; it is either accepted, giving a configuration that every command
// can use, or refused with a one-line configuration error (78) or usage
// error (64).
func FuzzLoadConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"endpoints: [127.0.0.1:2379]\nprefix: claimctl/\nttl: 60s\n",
		"endpoints: 127.0.0.1:2379,127.0.0.1:2380\ndial-timeout: 1s\ncommand-timeout: 2s\ncolor: never\n",
		"endpoint: x\n",
		"ttl: 0s\n",
		"dial-timeout: 5\n",
		"prefix: [a]\n",
		"- a\n- b\n",
		"insecure-skip-tls-verify: yes\n",
		"a: &x [1, 2]\nb: *x\n",
		"endpoints: [\n",
		"user: 'u:p'\n",
		"color: 5\n",
		"{}",
		"~",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, yaml []byte) {
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		getenv := func(string) string { return "" }
		cfg, err := loadConfig(pflag.NewFlagSet("fuzz", pflag.ContinueOnError), path, getenv)
		if err != nil {
			if code := exitCode(err); code != ExitConfig && code != ExitUsage {
				t.Fatalf("loadConfig(%q): exit code %d for %v; want 78 or 64", yaml, code, err)
			}
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("loadConfig(%q): message is empty or not one line: %q", yaml, msg)
			}
			return
		}
		if cfg.File != path {
			t.Fatalf("loadConfig(%q): File = %q, want %q", yaml, cfg.File, path)
		}
		if len(cfg.Endpoints) == 0 || cfg.DialTimeout <= 0 || cfg.CommandTimeout <= 0 {
			t.Fatalf("loadConfig(%q) accepted %+v: no endpoint or a timeout that is not positive", yaml, cfg)
		}
		for _, ep := range cfg.Endpoints {
			if err := checkEndpoint(ep); err != nil {
				t.Fatalf("loadConfig(%q) accepted endpoint %q: %v", yaml, ep, err)
			}
		}
		if err := claim.ValidateTTL(cfg.TTL); err != nil {
			t.Fatalf("loadConfig(%q) accepted TTL %v: %v", yaml, cfg.TTL, err)
		}
		if !slices.Contains([]string{"auto", "always", "never"}, cfg.Color) {
			t.Fatalf("loadConfig(%q) accepted color %q", yaml, cfg.Color)
		}
		if cfg.Password != "" && cfg.User == "" {
			t.Fatalf("loadConfig(%q) accepted a password without a user", yaml)
		}
	})
}
