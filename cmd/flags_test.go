package cmd

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/iostreams"
)

// testFactory is a factory on test streams whose environment is env alone,
// with XDG_CONFIG_HOME pointing at an empty directory so that no config file
// of the developer's is read.
func testFactory(t *testing.T, env map[string]string) (f *Factory, out, errOut *bytes.Buffer) {
	t.Helper()
	full := map[string]string{"XDG_CONFIG_HOME": t.TempDir()}
	for k, v := range env {
		full[k] = v
	}
	streams, _, out, errOut := iostreams.Test()
	getenv := func(k string) string { return full[k] }
	return &Factory{IO: streams, Build: BuildInfo{Version: "test"}, Getenv: getenv}, out, errOut
}

// execSub runs args through claimctl's root command with its command of
// sub's name replaced by sub (built with a capturing runF), so that global
// flags are parsed as claimctl parses them. It returns Execute's error.
func execSub(t *testing.T, f *Factory, sub *cobra.Command, args ...string) error {
	t.Helper()
	root := NewRootCmd(f)
	for _, c := range root.Commands() {
		if c.Name() == sub.Name() {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(sub)
	root.SetArgs(args)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	return root.ExecuteContext(context.Background())
}

// wantFlagError checks that err is a usage error reported with the pointer
// to --help (a flagError), with a message containing want.
func wantFlagError(t *testing.T, args []string, err error, want string) {
	t.Helper()
	var fe *flagError
	if !errors.As(err, &fe) {
		t.Fatalf("%q: got error %v (%T), want a flag error containing %q", args, err, err, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%q: got %q, want it to contain %q", args, err, want)
	}
}

func TestAcquireFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want func(*AcquireOptions) bool
		err  string // a flag error's message, in part
	}{
		{args: []string{"acquire", "deploy"}, want: func(o *AcquireOptions) bool {
			a := o.Acquire
			return o.Name == "deploy" && o.Output == "text" && a.Limit == 1 && !a.NonBlock && a.Timeout == 0 &&
				a.ConflictExit == ExitBusy && a.Note == "" && a.Owner == "" && a.SlotsFlag == ""
		}},
		{args: []string{"acquire", "-n", "-E", "0", "--note", "v1.2", "--owner", "ci", "--limit", "3", "-o", "json", "deploy"}, want: func(o *AcquireOptions) bool {
			a := o.Acquire
			return o.Name == "deploy" && o.Output == "json" && a.NonBlock && a.ConflictExit == 0 && a.Note == "v1.2" && a.Owner == "ci" && a.Limit == 3
		}},
		{args: []string{"acquire", "deploy", "-w", "5s", "--slots", "db-1,db-2"}, want: func(o *AcquireOptions) bool {
			return o.Name == "deploy" && o.Acquire.Timeout == 5*time.Second && o.Acquire.SlotsFlag == "db-1,db-2"
		}},
		{args: []string{"acquire", "--conflict-exit-code=3", "--nonblock", "--timeout", "1m", "-o", "env", "x"}, want: func(o *AcquireOptions) bool {
			return o.Acquire.ConflictExit == 3 && o.Acquire.NonBlock && o.Acquire.Timeout == time.Minute && o.Output == "env"
		}},
		{args: []string{"acquire"}, err: "acquire takes NAME (got 0 arguments)"},
		{args: []string{"acquire", "a", "b"}, err: "acquire takes NAME (got 2 arguments)"},
		{args: []string{"acquire", "--bogus", "x"}, err: "unknown flag: --bogus"},
		{args: []string{"acquire", "-w", "soon", "x"}, err: `invalid argument "soon" for "-w, --timeout"`},
		{args: []string{"acquire", "--limit", "many", "x"}, err: `invalid argument "many" for "--limit"`},
	} {
		f, _, _ := testFactory(t, nil)
		var got *AcquireOptions
		err := execSub(t, f, NewCmdAcquire(f, func(o *AcquireOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			if got != nil {
				t.Errorf("%q: runF was called", tc.args)
			}
			continue
		}
		if err != nil || got == nil || !tc.want(got) {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}

// TestGlobalFlags checks the global flags that reach a command's
// configuration: --log-format (the event log's format from the first
// record) and --metrics-file, on acquire, run and release, before or after
// NAME.
func TestGlobalFlags(t *testing.T) {
	type check struct {
		f   *Factory
		cmd *cobra.Command
	}
	for _, tc := range []struct {
		args []string
		sub  func(f *Factory, got *check) *cobra.Command
	}{
		{[]string{"--log-format", "json", "acquire", "--metrics-file", "m.prom", "x"}, func(f *Factory, got *check) *cobra.Command {
			return NewCmdAcquire(f, func(o *AcquireOptions) error { *got = check{o.f, o.cmd}; return nil })
		}},
		{[]string{"acquire", "x", "--metrics-file", "m.prom", "--log-format=json"}, func(f *Factory, got *check) *cobra.Command {
			return NewCmdAcquire(f, func(o *AcquireOptions) error { *got = check{o.f, o.cmd}; return nil })
		}},
		{[]string{"--log-format", "json", "run", "--metrics-file", "m.prom", "x", "--", "true"}, func(f *Factory, got *check) *cobra.Command {
			return NewCmdRun(f, func(o *RunOptions) error { *got = check{o.f, o.cmd}; return nil })
		}},
		{[]string{"run", "x", "--log-format", "json", "--metrics-file", "m.prom", "true"}, func(f *Factory, got *check) *cobra.Command {
			return NewCmdRun(f, func(o *RunOptions) error { *got = check{o.f, o.cmd}; return nil })
		}},
		{[]string{"--log-format", "json", "release", "--metrics-file", "m.prom", "TOKEN"}, func(f *Factory, got *check) *cobra.Command {
			return NewCmdRelease(f, func(o *ReleaseOptions) error { *got = check{o.f, o.cmd}; return nil })
		}},
	} {
		f, _, _ := testFactory(t, nil)
		var got check
		if err := execSub(t, f, tc.sub(f, &got), tc.args...); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got.cmd == nil {
			t.Fatalf("%q: runF not called", tc.args)
		}
		if !got.f.jsonLog() {
			t.Errorf("%q: the event log is not JSON before the configuration is loaded", tc.args)
		}
		cfg, err := got.f.Config(got.cmd)
		if err != nil {
			t.Fatalf("%q: config: %v", tc.args, err)
		}
		if cfg.LogFormat != "json" || cfg.MetricsFile != "m.prom" || cfg.Sources["metrics-file"] != "flag --metrics-file" {
			t.Errorf("%q: log format %q, metrics file %q (from %s)", tc.args, cfg.LogFormat, cfg.MetricsFile, cfg.Sources["metrics-file"])
		}
	}
}

func TestRenewFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		env        map[string]string
		token, out string
		err        string
	}{
		{args: []string{"renew", "ct1.a"}, token: "ct1.a", out: "text"},
		{args: []string{"renew", "-o", "json", "ct1.a"}, token: "ct1.a", out: "json"},
		{args: []string{"renew"}, env: map[string]string{"CLAIMCTL_TOKEN": "ct1.env"}, token: "ct1.env", out: "text"},
		{args: []string{"renew", "ct1.arg"}, env: map[string]string{"CLAIMCTL_TOKEN": "ct1.env"}, token: "ct1.arg", out: "text"},
		{args: []string{"renew"}, token: "", out: "text"},
		{args: []string{"renew", "a", "b"}, err: "renew takes [TOKEN] (got 2 arguments)"},
		{args: []string{"renew", "--force", "a"}, err: "unknown flag: --force"},
	} {
		f, _, _ := testFactory(t, tc.env)
		var got *RenewOptions
		err := execSub(t, f, NewCmdRenew(f, func(o *RenewOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			continue
		}
		if err != nil || got == nil || got.Token != tc.token || got.Output != tc.out {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}

func TestReleaseFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   map[string]string
		arg   string
		force bool
		out   string
		err   string
	}{
		{args: []string{"release", "ct1.a"}, arg: "ct1.a", out: "text"},
		{args: []string{"release", "-o", "json", "ct1.a"}, arg: "ct1.a", out: "json"},
		{args: []string{"release"}, env: map[string]string{"CLAIMCTL_TOKEN": "ct1.env"}, arg: "ct1.env", out: "text"},
		// --force takes a NAME, never $CLAIMCTL_TOKEN.
		{args: []string{"release", "--force", "deploy"}, env: map[string]string{"CLAIMCTL_TOKEN": "ct1.env"}, arg: "deploy", force: true, out: "text"},
		{args: []string{"release", "deploy", "--force", "-o", "json"}, arg: "deploy", force: true, out: "json"},
		{args: []string{"release", "--force"}, env: map[string]string{"CLAIMCTL_TOKEN": "ct1.env"}, err: "release --force takes the claim NAME"},
		{args: []string{"release", "--force", "a", "b"}, err: "release takes [TOKEN] (got 2 arguments)"},
		{args: []string{"release", "a", "b"}, err: "release takes [TOKEN] (got 2 arguments)"},
		{args: []string{"release", "--force=maybe", "a"}, err: `invalid argument "maybe" for "--force"`},
	} {
		f, _, _ := testFactory(t, tc.env)
		var got *ReleaseOptions
		err := execSub(t, f, NewCmdRelease(f, func(o *ReleaseOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			continue
		}
		if err != nil || got == nil || got.Arg != tc.arg || got.Force != tc.force || got.Output != tc.out {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}

// TestRunFlags covers cmd/runargs.go's rules: claimctl's flags before and
// after NAME, the command from "--" or from the first argument that is
// neither a flag of claimctl's nor a flag's value, unknown flags before the
// command, and -h after NAME.
func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		name    string
		command []string
		want    func(*RunOptions) bool
		err     string
	}{
		{args: []string{"run", "x", "--", "echo", "hi"}, name: "x", command: []string{"echo", "hi"}, want: func(o *RunOptions) bool {
			a := o.Acquire
			return !a.NonBlock && a.ConflictExit == ExitBusy && a.Limit == 1 && !o.Shell && o.Margin == 0 && o.Grace == 5*time.Second &&
				o.MaxRuntime == 0 && o.MinHold == 0 && !o.NewHold
		}},
		{args: []string{"run", "x", "echo", "hi"}, name: "x", command: []string{"echo", "hi"}},
		{args: []string{"run", "-n", "x", "echo"}, name: "x", command: []string{"echo"}, want: func(o *RunOptions) bool { return o.Acquire.NonBlock }},
		// After NAME: claimctl's flags, up to the command; the command's own
		// flags are left alone.
		{args: []string{"run", "x", "-n", "-E", "0", "echo", "-n", "hi"}, name: "x", command: []string{"echo", "-n", "hi"}, want: func(o *RunOptions) bool {
			return o.Acquire.NonBlock && o.Acquire.ConflictExit == 0
		}},
		{args: []string{"run", "x", "echo", "-n"}, name: "x", command: []string{"echo", "-n"}, want: func(o *RunOptions) bool { return !o.Acquire.NonBlock }},
		{args: []string{"run", "x", "-w", "5s", "sleep", "1"}, name: "x", command: []string{"sleep", "1"}, want: func(o *RunOptions) bool {
			return o.Acquire.Timeout == 5*time.Second
		}},
		{args: []string{"run", "x", "-n", "--", "-weird-command"}, name: "x", command: []string{"-weird-command"}, want: func(o *RunOptions) bool { return o.Acquire.NonBlock }},
		{args: []string{"run", "--shell", "--margin", "2s", "x", "--grace", "1s", "--max-runtime", "1m", "--min-hold", "30s", "--new-hold", "--limit", "2", "--", "a | b"},
			name: "x", command: []string{"a | b"}, want: func(o *RunOptions) bool {
				return o.Shell && o.Margin == 2*time.Second && o.Grace == time.Second && o.MaxRuntime == time.Minute && o.MinHold == 30*time.Second && o.NewHold && o.Acquire.Limit == 2
			}},
		// "--" before NAME: no flags after NAME; a second "--" may separate
		// NAME from the command.
		{args: []string{"run", "-n", "--", "x", "echo", "-n"}, name: "x", command: []string{"echo", "-n"}},
		{args: []string{"run", "--", "x", "--", "-n"}, name: "x", command: []string{"-n"}, want: func(o *RunOptions) bool { return !o.Acquire.NonBlock }},
		{args: []string{"run"}, err: "run takes NAME and a command: claimctl run [flags] NAME [flags] [--] CMD [ARGS...]"},
		{args: []string{"run", "--"}, err: "run takes NAME and a command"},
		{args: []string{"run", "x"}, err: "run needs a command after NAME: claimctl run x [flags] -- CMD [ARGS...]"},
		{args: []string{"run", "x", "-n", "--"}, err: "run needs a command after NAME"},
		{args: []string{"run", "-n", "--", "x", "--"}, err: "run needs a command after NAME"},
		{args: []string{"run", "x", "--bogus", "echo"}, err: "run x: unknown flag: --bogus (claimctl's own flags come before the command; if it is the command's, start the command with '--'"},
		{args: []string{"run", "x", "-Z", "echo"}, err: "run x: unknown shorthand flag: 'Z' in -Z (claimctl's own flags"},
		{args: []string{"run", "--bogus", "x", "echo"}, err: "unknown flag: --bogus"},
		{args: []string{"run", "x", "-w", "soon", "echo"}, err: `run x: invalid argument "soon" for "-w, --timeout"`},
	} {
		f, _, _ := testFactory(t, nil)
		var got *RunOptions
		err := execSub(t, f, NewCmdRun(f, func(o *RunOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			if got != nil {
				t.Errorf("%q: runF was called", tc.args)
			}
			continue
		}
		if err != nil || got == nil {
			t.Fatalf("%q: err %v, options %+v", tc.args, err, got)
		}
		if got.Name != tc.name || !slices.Equal(got.Command, tc.command) || (tc.want != nil && !tc.want(got)) {
			t.Errorf("%q: name %q, command %q, options %+v", tc.args, got.Name, got.Command, got)
		}
	}
}

// TestRunHelpAfterName checks that -h after NAME, before the command, asks
// for help (printed, nothing run), while -h after the command is the
// command's.
func TestRunHelpAfterName(t *testing.T) {
	for _, args := range [][]string{{"run", "x", "-h"}, {"run", "x", "-n", "--help", "echo"}} {
		f, out, _ := testFactory(t, nil)
		called := false
		err := execSub(t, f, NewCmdRun(f, func(*RunOptions) error { called = true; return nil }), args...)
		if err != nil || called || !strings.Contains(out.String(), "Usage:\n  claimctl "+runUsage) {
			t.Errorf("%q: err %v, runF called %v, stdout:\n%s", args, err, called, out)
		}
	}
	f, out, _ := testFactory(t, nil)
	var got *RunOptions
	if err := execSub(t, f, NewCmdRun(f, func(o *RunOptions) error { got = o; return nil }), "run", "x", "grep", "-h", "y"); err != nil || got == nil {
		t.Fatalf("err %v", err)
	}
	if !slices.Equal(got.Command, []string{"grep", "-h", "y"}) || out.Len() != 0 {
		t.Errorf("command %q, stdout %q", got.Command, out)
	}
}

func TestStatusFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		name, out string
		err       string
	}{
		{args: []string{"status", "deploy"}, name: "deploy", out: "text"},
		{args: []string{"status", "-o", "json", "deploy"}, name: "deploy", out: "json"},
		{args: []string{"status", "deploy", "--output=json"}, name: "deploy", out: "json"},
		{args: []string{"status"}, err: "status takes NAME (got 0 arguments)"},
		{args: []string{"status", "a", "b"}, err: "status takes NAME (got 2 arguments)"},
		{args: []string{"status", "-n", "a"}, err: "unknown shorthand flag: 'n' in -n"},
	} {
		f, _, _ := testFactory(t, nil)
		var got *StatusOptions
		err := execSub(t, f, NewCmdStatus(f, func(o *StatusOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			continue
		}
		if err != nil || got == nil || got.Name != tc.name || got.Output != tc.out {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}

func TestListFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		prefix, out string
		err         string
	}{
		{args: []string{"list"}, prefix: "", out: "text"},
		{args: []string{"list", "deploy/"}, prefix: "deploy/", out: "text"},
		{args: []string{"list", "-o", "json"}, prefix: "", out: "json"},
		{args: []string{"list", "a", "b"}, err: "list takes [NAME-PREFIX] (got 2 arguments)"},
		{args: []string{"list", "--since", "1h"}, err: "unknown flag: --since"},
	} {
		f, _, _ := testFactory(t, nil)
		var got *ListOptions
		err := execSub(t, f, NewCmdList(f, func(o *ListOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			continue
		}
		if err != nil || got == nil || got.NamePrefix != tc.prefix || got.Output != tc.out {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}

func TestHistoryFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"history"}, "history takes NAME (got 0 arguments)"},
		{[]string{"history", "a", "b"}, "history takes NAME (got 2 arguments)"},
		{[]string{"history", "--since", "yesterday", "a"}, `invalid argument "yesterday" for "--since"`},
	} {
		f, _, _ := testFactory(t, nil)
		err := execSub(t, f, NewCmdHistory(f, func(*HistoryOptions) error { t.Errorf("%q: runF called", tc.args); return nil }), tc.args...)
		wantFlagError(t, tc.args, err, tc.err)
	}
}

func TestDoctorFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		out  string
		err  string
	}{
		{args: []string{"doctor"}, out: "text"},
		{args: []string{"doctor", "-o", "json"}, out: "json"},
		{args: []string{"doctor", "extra"}, err: "doctor takes no arguments (got 1 argument)"},
	} {
		f, _, _ := testFactory(t, nil)
		var got *DoctorOptions
		err := execSub(t, f, NewCmdDoctor(f, func(o *DoctorOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			continue
		}
		if err != nil || got == nil || got.Output != tc.out {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}

func TestVersionFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		out  string
		err  string
	}{
		{args: []string{"version"}, out: "text"},
		{args: []string{"version", "-o", "json"}, out: "json"},
		{args: []string{"version", "now"}, err: "version takes no arguments (got 1 argument)"},
	} {
		f, _, _ := testFactory(t, nil)
		var got *VersionOptions
		err := execSub(t, f, NewCmdVersion(f, func(o *VersionOptions) error { got = o; return nil }), tc.args...)
		if tc.err != "" {
			wantFlagError(t, tc.args, err, tc.err)
			continue
		}
		if err != nil || got == nil || got.Output != tc.out {
			t.Errorf("%q: err %v, options %+v", tc.args, err, got)
		}
	}
}
