package cmd

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// claimSentinels are pkg/claim's error sentinels by name, each with the exit
// code it maps to. TestExitCodeCoversEveryClaimSentinel keeps the list
// complete.
var claimSentinels = map[string]struct {
	err  error
	code int
}{
	"ErrInvalidName":    {claim.ErrInvalidName, ExitUsage},
	"ErrInvalidPrefix":  {claim.ErrInvalidPrefix, ExitUsage},
	"ErrInvalidTTL":     {claim.ErrInvalidTTL, ExitUsage},
	"ErrInvalidLimit":   {claim.ErrInvalidLimit, ExitUsage},
	"ErrLimitMismatch":  {claim.ErrLimitMismatch, ExitUsage},
	"ErrInvalidSlots":   {claim.ErrInvalidSlots, ExitUsage},
	"ErrSlotsMismatch":  {claim.ErrSlotsMismatch, ExitUsage},
	"ErrMalformedToken": {claim.ErrMalformedToken, ExitBadToken},
	"ErrBusy":           {claim.ErrBusy, ExitBusy},
	"ErrWaitTimeout":    {claim.ErrWaitTimeout, ExitBusy},
	"ErrNotHeld":        {claim.ErrNotHeld, ExitNotHeld},
	"ErrUnavailable":    {claim.ErrUnavailable, ExitUnavailable},
	"ErrPermission":     {claim.ErrPermission, ExitPermission},
}

// TestExitCode is the table over every error exitCode knows: each sentinel
// bare and wrapped with context as the commands wrap it, the typed errors,
// and which wins when one error carries two. The default is 1, so every
// row that expects another code fails if its case is dropped.
func TestExitCode(t *testing.T) {
	type row struct {
		name string
		err  error
		code int
	}
	var rows []row
	for name, s := range claimSentinels {
		rows = append(rows,
			row{name, s.err, s.code},
			row{name + " wrapped", fmt.Errorf("acquire deploy: %w", s.err), s.code})
	}
	rows = append(rows, []row{
		{"nil", nil, ExitOK},
		{"plain error", errors.New("stdout closed"), ExitError},
		{"exitError", withCode(42, errors.New("x")), 42},
		{"exitError without message", &exitError{code: 3, quiet: true}, 3},
		{"exitError wrapped", fmt.Errorf("run x: %w", withCode(ExitTimeout, errors.New("too long"))), ExitTimeout},
		{"usageError", usageError("invalid --since %v", 0), ExitUsage},
		{"configError", configError(errors.New("config file x: bad")), ExitConfig},
		// -E N: the code asked for replaces busy's.
		{"-E over busy", &exitError{code: 9, err: claim.ErrBusy}, 9},
		{"-E 0 over a wait timeout", &exitError{code: 0, err: claim.ErrWaitTimeout, quiet: true}, 0},
		{"signalError SIGINT", signalError{syscall.SIGINT}, 128 + int(syscall.SIGINT)},
		{"signalError SIGTERM", signalError{syscall.SIGTERM}, 128 + int(syscall.SIGTERM)},
		{"signalError wrapped", fmt.Errorf("run x: %w; the command was not started", signalError{syscall.SIGHUP}), 128 + int(syscall.SIGHUP)},
		// A signal that ends a wait ends it with the wait's error beside it.
		{"signalError with busy", fmt.Errorf("%w: %w", claim.ErrWaitTimeout, signalError{syscall.SIGTERM}), 128 + int(syscall.SIGTERM)},
		{"StartError not found", &supervise.StartError{Command: "nope", Code: 127, Err: syscall.ENOENT}, 127},
		{"StartError not executable", &supervise.StartError{Command: "./x", Path: "./x", Code: 126, Err: syscall.EACCES}, 126},
		{"StartError wrapped", fmt.Errorf("run x: %w", &supervise.StartError{Command: "nope", Code: 127}), 127},
		// An explicit code wins over the sentinel it carries.
		{"exitError over not held", withCode(ExitNotHeld, fmt.Errorf("run x: %w", claim.ErrUnavailable)), ExitNotHeld},
		{"a flag error alone is not a usage error here (Run maps it)", &flagError{errors.New("unknown flag: --x")}, ExitError},
	}...)
	for _, r := range rows {
		if got := exitCode(r.err); got != r.code {
			t.Errorf("%s: exitCode(%v) = %d, want %d", r.name, r.err, got, r.code)
		}
	}
}

// TestExitCodeCoversEveryClaimSentinel reads pkg/claim's Err* variables
// and checks that claimSentinels lists each, so that a new sentinel gets a
// decided exit code.
func TestExitCodeCoversEveryClaimSentinel(t *testing.T) {
	files, err := filepath.Glob("../pkg/claim/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("pkg/claim's files: %v %v", files, err)
	}
	found := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if !strings.HasPrefix(id.Name, "Err") {
						continue
					}
					found++
					if _, ok := claimSentinels[id.Name]; !ok {
						t.Errorf("claim.%s has no row in claimSentinels: decide its exit code in exitCode and add it", id.Name)
					}
				}
			}
		}
	}
	if found != len(claimSentinels) {
		t.Errorf("pkg/claim has %d Err* variables, claimSentinels lists %d", found, len(claimSentinels))
	}
}

// TestRunExitCodes runs claimctl's whole command line (Run) for the errors
// that are decided before etcd is dialled: usage and flag errors (which
// Run maps, with the pointer to --help), unknown commands, config errors,
// and the sentinels a bad argument produces. Each message is printed once.
func TestRunExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		code   int
		stderr string // the first line, exactly
		help   bool   // followed by the pointer to --help
	}{
		{args: []string{"acquire"}, code: ExitUsage, stderr: "claimctl: acquire takes NAME (got 0 arguments)", help: true},
		{args: []string{"acquire", "--bogus", "x"}, code: ExitUsage, stderr: "claimctl: unknown flag: --bogus", help: true},
		{args: []string{"acquire", "--ttl", "long", "x"}, code: ExitUsage, stderr: `claimctl: invalid argument "long" for "--ttl" flag: time: invalid duration "long"`, help: true},
		{args: []string{"frobnicate"}, code: ExitUsage, stderr: `claimctl: unknown command "frobnicate" for "claimctl"`, help: true},
		{args: []string{"--quiet", "frobnicate"}, code: ExitUsage, stderr: `claimctl: unknown command "frobnicate" for "claimctl"`, help: true},
		{args: []string{"__complete"}, code: ExitUsage, help: true},
		{args: []string{"completion", "bash", "x"}, code: ExitUsage, stderr: "claimctl: completion bash takes no arguments (got 1 argument)", help: true},
		{args: []string{"run", "x", "--bogus", "echo"}, code: ExitUsage, stderr: "claimctl: run x: unknown flag: --bogus (claimctl's own flags come before the command; if it is the command's, start the command with '--': claimctl run x [flags] -- CMD [ARGS...])", help: true},
		{args: []string{"acquire", "-o", "yaml", "x"}, code: ExitUsage, stderr: `claimctl: invalid --output "yaml": use text, json, env`},
		{args: []string{"acquire", "-n", "-w", "1s", "x"}, code: ExitUsage, stderr: "claimctl: -n and -w contradict each other: -n never waits; use one of them"},
		{args: []string{"acquire", "--limit", "0", "x"}, code: ExitUsage, stderr: "claimctl: invalid limit: 0; use 1 (a mutex) up to 10000 holders at once"},
		{args: []string{"status", "has space"}, code: ExitUsage},
		{args: []string{"release", "--force", "has space"}, code: ExitUsage},
		{args: []string{"renew"}, code: ExitUsage, stderr: "claimctl: no token: pass the token acquire printed, or set CLAIMCTL_TOKEN"},
		{args: []string{"release", "not-a-token"}, code: ExitBadToken, stderr: `claimctl: malformed token: it does not start with "ct1."; pass the token exactly as 'claimctl acquire' printed it`},
		// The token from the injected environment.
		{args: []string{"renew"}, env: map[string]string{"CLAIMCTL_TOKEN": "not-a-token"}, code: ExitBadToken},
		{args: []string{"--config", "/nonexistent/claimctl.yaml", "acquire", "x"}, code: ExitConfig},
		{args: []string{"acquire", "x"}, env: map[string]string{"CLAIMCTL_COLOR": "rainbow"}, code: ExitConfig, stderr: `claimctl: invalid color (from env CLAIMCTL_COLOR): "rainbow" is not auto, always or never`},
		{args: []string{"acquire", "x"}, env: map[string]string{"CLAIMCTL_TTL": "soon"}, code: ExitConfig},
		{args: []string{"--help"}, code: ExitOK},
		{args: []string{"run", "x", "-h"}, code: ExitOK},
		{args: []string{"version"}, code: ExitOK},
		{args: []string{"help", "exit-codes"}, code: ExitOK},
	} {
		f, _, errOut := testFactory(t, tc.env)
		code := Run(context.Background(), f.Build, f.IO, f.Getenv, tc.args)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", tc.args, code, tc.code, errOut)
			continue
		}
		lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
		if tc.code == ExitOK {
			if errOut.Len() != 0 {
				t.Errorf("%q: stderr %q, want nothing", tc.args, errOut)
			}
			continue
		}
		if tc.stderr != "" && lines[0] != tc.stderr {
			t.Errorf("%q: stderr\n%s\nwant first line\n%s", tc.args, errOut, tc.stderr)
		}
		if n := strings.Count(errOut.String(), "claimctl: "); n != 1 {
			t.Errorf("%q: %d messages on stderr, want 1:\n%s", tc.args, n, errOut)
		}
		if got := strings.Contains(errOut.String(), "Run 'claimctl --help' for usage."); got != tc.help {
			t.Errorf("%q: pointer to --help %v, want %v:\n%s", tc.args, got, tc.help, errOut)
		}
	}
}
