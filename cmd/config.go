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

// setting is one configuration key, described once: its config-file key and
// flag name, default, flag help, environment variables, how its merged value
// is decoded and checked into Config, and how doctor shows it. Adding a
// setting is adding a row here (and one to the README's table, which
// TestREADMEListsEverySetting checks).
type setting struct {
	key string
	// def is the default; its type decides the flag's: []string, string,
	// bool or time.Duration.
	def   any
	usage string
	// etcdctl is etcdctl's variable for it, honoured below the config file.
	etcdctl string
	// env is the CLAIMCTL_* variable when it is not derived from key.
	env string
	// global settings are flags of every command (root's persistent
	// flags); the others are flags of the commands that add them (addFlag).
	global bool
	// text is the Config field of a string setting, which must be one of
	// choices if there are any; decode and display follow from it.
	text    func(*Config) *string
	choices []string
	// load decodes the merged value of any other setting into cfg and
	// checks it; an error says what is wrong with the value (valueError
	// adds the key and the source).
	load func(cfg *Config, v any) error
	// show is the value as doctor reports it, when it is not text's.
	show func(cfg *Config) string
}

// settings is the table of configuration keys. Config-file keys, flag names
// and CLAIMCTL_* variables all derive from key.
var settings = []setting{
	{key: "endpoints", def: []string{"127.0.0.1:2379"}, usage: "etcd endpoints, comma-separated", etcdctl: "ETCDCTL_ENDPOINTS", global: true,
		load: func(c *Config, v any) (err error) {
			if c.Endpoints, err = endpointList(v); err != nil {
				return fmt.Errorf("%v; use host:port or http, https, unix or unixs URLs, e.g. 127.0.0.1:2379 or https://etcd1:2379", err)
			}
			return nil
		},
		show: func(c *Config) string { return strings.Join(c.Endpoints, ",") }},
	{key: "prefix", def: "claimctl/", usage: "key prefix claims live under (must end in '/')", global: true,
		text: func(c *Config) *string { return &c.Prefix }},
	{key: "dial-timeout", def: 2 * time.Second, usage: "timeout for connecting to etcd", etcdctl: "ETCDCTL_DIAL_TIMEOUT", global: true,
		load: positiveInto(func(c *Config) *time.Duration { return &c.DialTimeout }),
		show: func(c *Config) string { return c.DialTimeout.String() }},
	{key: "command-timeout", def: 5 * time.Second, usage: "timeout for each etcd request", etcdctl: "ETCDCTL_COMMAND_TIMEOUT", global: true,
		load: positiveInto(func(c *Config) *time.Duration { return &c.CommandTimeout }),
		show: func(c *Config) string { return c.CommandTimeout.String() }},
	// CLAIMCTL_KEY names the claim's etcd key in run's child, so the TLS
	// files use CLAIMCTL_TLS_* variables.
	{key: "cacert", def: "", usage: "verify etcd's certificate with this CA bundle", etcdctl: "ETCDCTL_CACERT", env: "CLAIMCTL_TLS_CACERT", global: true,
		text: func(c *Config) *string { return &c.CACert }},
	{key: "cert", def: "", usage: "client TLS certificate file", etcdctl: "ETCDCTL_CERT", env: "CLAIMCTL_TLS_CERT", global: true,
		text: func(c *Config) *string { return &c.Cert }},
	{key: "key", def: "", usage: "client TLS key file", etcdctl: "ETCDCTL_KEY", env: "CLAIMCTL_TLS_KEY", global: true,
		text: func(c *Config) *string { return &c.Key }},
	{key: "insecure-skip-tls-verify", def: false, usage: "skip verification of etcd's certificate (insecure)", etcdctl: "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", global: true,
		load: func(c *Config, v any) (err error) { c.InsecureSkip, err = boolean(v); return },
		show: func(c *Config) string { return strconv.FormatBool(c.InsecureSkip) }},
	{key: "user", def: "", usage: "etcd user, as NAME or NAME:PASSWORD", etcdctl: "ETCDCTL_USER", global: true,
		text: func(c *Config) *string { return &c.User }},
	{key: "password", def: "", usage: "etcd password (prefer --password-file or CLAIMCTL_PASSWORD)", etcdctl: "ETCDCTL_PASSWORD", global: true,
		text: func(c *Config) *string { return &c.Password },
		show: func(c *Config) string {
			if c.Password != "" {
				return "(set)"
			}
			return ""
		}},
	{key: "password-file", def: "", usage: "read the etcd password from this file", global: true,
		text: func(c *Config) *string { return &c.PasswordFile }},
	// The TTL's range is the claim protocol's to check, by the command for
	// a flag and by loadConfig for the environment or the file.
	{key: "ttl", def: 60 * time.Second, usage: "lease TTL: how long the claim outlives a crashed holder (whole seconds)",
		load: func(c *Config, v any) (err error) { c.TTL, err = duration(v); return },
		show: func(c *Config) string { return c.TTL.String() }},
	{key: "color", def: "auto", usage: "colour: auto, always or never", global: true,
		text: func(c *Config) *string { return &c.Color }, choices: []string{"auto", "always", "never"}},
	{key: "log-format", def: eventlog.Text, usage: "stderr messages as text, or as json: one event per line (docs/json.md)", global: true,
		text: func(c *Config) *string { return &c.LogFormat }, choices: eventlog.Formats},
	{key: "metrics-file", def: "", usage: "write the outcome for node_exporter's textfile collector: a DIR/ (one claimctl_NAME.prom per claim) or a FILE.prom",
		text: func(c *Config) *string { return &c.MetricsFile }},
}

// lookupSetting returns the row of key; the key must be in the table.
func lookupSetting(key string) setting {
	for _, s := range settings {
		if s.key == key {
			return s
		}
	}
	panic("cmd: no setting " + key)
}

// addFlag adds setting key's flag to fs, typed by its default, with its
// help or, if given, usage instead (release's --metrics-file says what it
// does there).
func addFlag(fs *pflag.FlagSet, key string, usage ...string) {
	s := lookupSetting(key)
	if len(usage) > 0 {
		s.usage = usage[0]
	}
	s.addFlag(fs, nil)
}

// addGlobalFlags adds the flags of the global settings to fs; a string
// setting named in vars is also stored there when parsed (--log-format is
// needed before the configuration is loaded, to report its errors).
func addGlobalFlags(fs *pflag.FlagSet, vars map[string]*string) {
	for _, s := range settings {
		if s.global {
			s.addFlag(fs, vars[s.key])
		}
	}
}

func (s setting) addFlag(fs *pflag.FlagSet, into *string) {
	switch def := s.def.(type) {
	case []string:
		fs.StringSlice(s.key, def, s.usage)
	case string:
		if into == nil {
			into = new(string)
		}
		fs.StringVar(into, s.key, def, s.usage)
	case bool:
		fs.Bool(s.key, def, s.usage)
	case time.Duration:
		fs.Duration(s.key, def, s.usage)
	default:
		panic(fmt.Sprintf("cmd: setting %s has a default of type %T", s.key, s.def))
	}
}

// decode loads the merged value v into cfg and checks it.
func (s setting) decode(cfg *Config, v any) error {
	if s.text == nil {
		return s.load(cfg, v)
	}
	text, err := str(v)
	if err != nil {
		return err
	}
	if len(s.choices) > 0 && !slices.Contains(s.choices, text) {
		return fmt.Errorf("%q is not %s", text, orList(s.choices))
	}
	*s.text(cfg) = text
	return nil
}

// display is the setting's value as doctor reports it.
func (s setting) display(cfg *Config) string {
	if s.show != nil {
		return s.show(cfg)
	}
	if s.text != nil {
		return *s.text(cfg)
	}
	return ""
}

// positiveInto loads a duration setting that must be positive.
func positiveInto(field func(*Config) *time.Duration) func(*Config, any) error {
	return func(c *Config, v any) error {
		d, err := duration(v)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("%v must be positive", d)
		}
		*field(c) = d
		return nil
	}
}

// orList writes choices as "a, b or c".
func orList(choices []string) string {
	if len(choices) < 2 {
		return strings.Join(choices, "")
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
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
	path, err := loadConfigFile(v, configPath, getenv)
	if err != nil {
		return nil, err
	}
	cfg.File = path
	fileKeys := map[string]bool{}
	for _, k := range v.AllKeys() {
		fileKeys[k] = true
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

	for _, s := range settings {
		if err := s.decode(cfg, v.Get(s.key)); err != nil {
			return nil, valueError(s.key, cfg.Sources[s.key], err)
		}
	}
	// A --ttl flag is checked by the command that takes it (a usage error);
	// a TTL from the environment or the file is a configuration error, and
	// the message must say where it came from.
	if src := cfg.Sources["ttl"]; !strings.HasPrefix(src, "flag") {
		if err := claim.ValidateTTL(cfg.TTL); err != nil {
			return nil, configError(fmt.Errorf("ttl (from %s): %w", src, err))
		}
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

// loadConfigFile reads the config file into v: --config's, else
// $CLAIMCTL_CONFIG's, else the first default one that exists. It returns the
// file read, or "" if there was none. A file named explicitly must exist; a
// default one may not.
func loadConfigFile(v *viper.Viper, configPath string, getenv func(string) string) (string, error) {
	path, explicit := configPath, configPath != ""
	if path == "" {
		if p := getenv("CLAIMCTL_CONFIG"); p != "" {
			path, explicit = p, true
		}
	}
	if path == "" {
		path = findConfigFile(getenv)
	}
	if path == "" {
		return "", nil
	}
	if err := readConfigFile(v, path); err != nil {
		if explicit || !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", nil
	}
	if err := checkKeys(path, v.AllKeys()); err != nil {
		return "", err
	}
	return path, nil
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
