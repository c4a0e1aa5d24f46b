package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
)

// Config is claimctl's configuration after flags, environment, config file
// and defaults have been merged. It is the only place Viper's values are read
// into; the rest of cmd/ uses this struct.
type Config struct {
	Endpoints      []string
	Prefix         string
	DialTimeout    time.Duration
	CommandTimeout time.Duration
	CACert         string
	Cert           string
	Key            string
	InsecureSkip   bool
	User           string
	Password       string
	PasswordFile   string
	TTL            time.Duration
	Color          string
	LogFormat      string
	MetricsFile    string

	// File is the config file that was read, or "".
	File string
	// Sources says where each setting came from: "flag", "env CLAIMCTL_X",
	// "env ETCDCTL_X", "file PATH", or "default".
	Sources map[string]string
}

// setting describes one configuration key: its flag and config-file name, its
// default, its CLAIMCTL_* variable when that is not derived from the key, and
// the etcdctl environment variable that is honoured as a fallback.
type setting struct {
	key     string
	def     any
	etcdctl string
	env     string
}

// settings is the table of configuration keys. Config file keys, flag names
// and CLAIMCTL_* variables all derive from key.
var settings = []setting{
	{"endpoints", []string{"127.0.0.1:2379"}, "ETCDCTL_ENDPOINTS", ""},
	{"prefix", "claimctl/", "", ""},
	{"dial-timeout", 2 * time.Second, "ETCDCTL_DIAL_TIMEOUT", ""},
	{"command-timeout", 5 * time.Second, "ETCDCTL_COMMAND_TIMEOUT", ""},
	// CLAIMCTL_KEY names the claim's etcd key in run's child, so the TLS
	// files use CLAIMCTL_TLS_* variables.
	{"cacert", "", "ETCDCTL_CACERT", "CLAIMCTL_TLS_CACERT"},
	{"cert", "", "ETCDCTL_CERT", "CLAIMCTL_TLS_CERT"},
	{"key", "", "ETCDCTL_KEY", "CLAIMCTL_TLS_KEY"},
	{"insecure-skip-tls-verify", false, "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", ""},
	{"user", "", "ETCDCTL_USER", ""},
	{"password", "", "ETCDCTL_PASSWORD", ""},
	{"password-file", "", "", ""},
	{"ttl", 60 * time.Second, "", ""},
	{"color", "auto", "", ""},
	{"log-format", eventlog.Text, "", ""},
	{"metrics-file", "", "", ""},
}

// envName returns the CLAIMCTL_* variable for a setting.
func (s setting) envName() string {
	if s.env != "" {
		return s.env
	}
	return "CLAIMCTL_" + strings.ToUpper(strings.ReplaceAll(s.key, "-", "_"))
}

// loadConfig merges, in order of precedence: flags that were set, CLAIMCTL_*
// variables, the config file, ETCDCTL_* variables, defaults. Errors in the
// config file or in a value's type are configuration errors (exit 78).
func loadConfig(flags *pflag.FlagSet, configPath string, getenv func(string) string) (*Config, error) {
	v := viper.New()
	cfg := &Config{Sources: map[string]string{}}

	path, explicit := configPath, configPath != ""
	if path == "" {
		if p := getenv("CLAIMCTL_CONFIG"); p != "" {
			path, explicit = p, true
		}
	}
	if path == "" {
		path = findConfigFile(getenv)
	}
	fileKeys := map[string]bool{}
	if path != "" {
		if err := readConfigFile(v, path); err != nil {
			if explicit || !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		} else {
			cfg.File = path
			for _, k := range v.AllKeys() {
				fileKeys[k] = true
			}
			if err := checkKeys(path, v.AllKeys()); err != nil {
				return nil, err
			}
		}
	}

	for _, s := range settings {
		v.SetDefault(s.key, s.def)
		cfg.Sources[s.key] = "default"
		if s.etcdctl != "" {
			if val := getenv(s.etcdctl); val != "" && !fileKeys[s.key] {
				v.SetDefault(s.key, val)
				cfg.Sources[s.key] = "env " + s.etcdctl
			}
		}
		if fileKeys[s.key] {
			cfg.Sources[s.key] = "file " + path
		}
		if val := getenv(s.envName()); val != "" {
			v.Set(s.key, val)
			cfg.Sources[s.key] = "env " + s.envName()
		}
		if f := flags.Lookup(s.key); f != nil && f.Changed {
			v.Set(s.key, flagValue(f))
			cfg.Sources[s.key] = "flag --" + s.key
		}
	}

	var err error
	get := func(key string) string { return cfg.Sources[key] }
	if cfg.Endpoints, err = endpointList(v.Get("endpoints")); err != nil {
		return nil, valueError("endpoints", get("endpoints"), fmt.Errorf("%v; use host:port or http, https, unix or unixs URLs, e.g. 127.0.0.1:2379 or https://etcd1:2379", err))
	}
	for _, s := range []struct {
		key string
		dst *string
	}{{"prefix", &cfg.Prefix}, {"cacert", &cfg.CACert}, {"cert", &cfg.Cert}, {"key", &cfg.Key},
		{"user", &cfg.User}, {"password", &cfg.Password}, {"password-file", &cfg.PasswordFile}, {"color", &cfg.Color}, {"log-format", &cfg.LogFormat},
		{"metrics-file", &cfg.MetricsFile}} {
		if *s.dst, err = str(v.Get(s.key)); err != nil {
			return nil, valueError(s.key, get(s.key), err)
		}
	}
	if !slices.Contains([]string{"auto", "always", "never"}, cfg.Color) {
		return nil, valueError("color", get("color"), fmt.Errorf("%q is not auto, always or never", cfg.Color))
	}
	if !slices.Contains(eventlog.Formats, cfg.LogFormat) {
		return nil, valueError("log-format", get("log-format"), fmt.Errorf("%q is not text or json", cfg.LogFormat))
	}
	for key, dst := range map[string]*time.Duration{"dial-timeout": &cfg.DialTimeout, "command-timeout": &cfg.CommandTimeout, "ttl": &cfg.TTL} {
		if *dst, err = duration(v.Get(key)); err != nil {
			return nil, valueError(key, get(key), err)
		}
		// The TTL's range is the claim protocol's to check.
		if key != "ttl" && *dst <= 0 {
			return nil, valueError(key, get(key), fmt.Errorf("%v must be positive", *dst))
		}
	}
	// A --ttl flag is checked by the command that takes it (a usage error);
	// a TTL from the environment or the file is a configuration error, and
	// the message must say where it came from.
	if src := get("ttl"); !strings.HasPrefix(src, "flag") {
		if err := claim.ValidateTTL(cfg.TTL); err != nil {
			return nil, configError(fmt.Errorf("ttl (from %s): %w", src, err))
		}
	}
	if cfg.InsecureSkip, err = boolean(v.Get("insecure-skip-tls-verify")); err != nil {
		return nil, valueError("insecure-skip-tls-verify", get("insecure-skip-tls-verify"), err)
	}
	if err := cfg.resolvePassword(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func flagValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.GetSlice()
	}
	return f.Value.String()
}

func valueError(key, source string, err error) error {
	if strings.HasPrefix(source, "flag") {
		return usageError("invalid --%s: %v", key, err)
	}
	return configError(fmt.Errorf("invalid %s (from %s): %v", key, source, err))
}

// findConfigFile returns the first existing default config file, or "".
func findConfigFile(getenv func(string) string) string {
	var candidates []string
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		candidates = append(candidates, filepath.Join(x, "claimctl", "config.yaml"))
	} else if h := getenv("HOME"); h != "" {
		candidates = append(candidates, filepath.Join(h, ".config", "claimctl", "config.yaml"))
	}
	candidates = append(candidates, "/etc/claimctl/config.yaml")
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	return ""
}

func readConfigFile(v *viper.Viper, path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return configError(fmt.Errorf("config file %s: %w; create it or drop --config/CLAIMCTL_CONFIG", path, fs.ErrNotExist))
		}
		return configError(fmt.Errorf("config file %s: %v", path, err))
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return configError(fmt.Errorf("config file %s is a directory; give the path of a YAML file", path))
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(f); err != nil {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		return configError(fmt.Errorf("config file %s is not valid YAML: %s", path, msg))
	}
	return nil
}

// checkKeys refuses unknown keys: a misspelt key would otherwise be ignored
// and claimctl would silently use a default.
func checkKeys(path string, keys []string) error {
	known := make([]string, 0, len(settings))
	for _, s := range settings {
		known = append(known, s.key)
	}
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return configError(fmt.Errorf("config file %s: unknown key %q; known keys: %s", path, k, strings.Join(known, ", ")))
		}
	}
	return nil
}

func stringList(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case string:
		raw = strings.Split(x, ",")
	case []string:
		raw = x
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list item %s is not a string", shown(e))
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("want a list of strings, got %T", v)
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// str reads a setting that is one string. YAML scalars (a numeric password,
// a file named 5) are taken as written; a list is a wrong type.
func str(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case []any, []string, map[string]any:
		return "", fmt.Errorf("want a single string, got %s", typeName(v))
	}
	return fmt.Sprint(v), nil
}

func typeName(v any) string {
	switch v.(type) {
	case []any, []string:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

// endpointList reads the endpoints and checks each one's form, so that a
// typo is reported at once instead of as an unreachable etcd after the dial
// timeout.
func endpointList(v any) ([]string, error) {
	eps, err := stringList(v)
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, errors.New("no endpoint given")
	}
	for _, ep := range eps {
		if err := checkEndpoint(ep); err != nil {
			return nil, err
		}
	}
	return eps, nil
}

// checkEndpoint accepts the endpoint forms etcd's client dials: host:port,
// http:// and https://host:port, and unix:// or unixs:// socket paths.
func checkEndpoint(ep string) error {
	bad := func(why string) error { return fmt.Errorf("endpoint %q %s", ep, why) }
	if rest, ok := cutAnyPrefix(ep, "unix://", "unixs://", "unix:", "unixs:"); ok {
		if rest == "" {
			return bad("has no socket path")
		}
		return nil
	}
	hostport := ep
	if scheme, rest, ok := strings.Cut(ep, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return bad(fmt.Sprintf("has scheme %q", scheme))
		}
		u, err := url.Parse(ep)
		if err != nil {
			return bad("is not a valid URL")
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return bad("has more than scheme://host:port")
		}
		hostport = rest
		if u.Path == "/" {
			hostport = strings.TrimSuffix(rest, "/")
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return bad("is not host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("has no valid port")
	}
	return nil
}

func cutAnyPrefix(s string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest, true
		}
	}
	return "", false
}

func duration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case time.Duration:
		return x, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration; use a number with a unit, e.g. 5s or 2m", x)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%s is not a duration; write it as a string with a unit, e.g. \"5s\"", shown(v))
}

// shown formats a value from the config file for a one-line message.
func shown(v any) string {
	s := fmt.Sprint(v)
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

func boolean(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, fmt.Errorf("%q is not true or false", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("%s is not true or false", shown(v))
}

// resolvePassword applies etcdctl's user:password form and --password-file,
// so that the password need not appear in a process list.
func (c *Config) resolvePassword() error {
	if user, pass, ok := strings.Cut(c.User, ":"); ok {
		c.User = user
		if c.Password == "" {
			c.Password = pass
		}
	}
	if c.PasswordFile != "" && c.Password == "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return configError(fmt.Errorf("password file: %v", err))
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
	}
	if c.Password != "" && c.User == "" {
		return configError(errors.New("a password is set but no user; set --user (or CLAIMCTL_USER)"))
	}
	return nil
}
