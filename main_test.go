package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/cmd"
	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestMain lets the test binary double as claimctl, so that scripts run the
// real command line in a real process.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"claimctl": func() {
			os.Exit(cmd.Main(cmd.BuildInfo{Version: "test", Commit: "test", Date: "test"}, os.Args[1:]))
		},
	})
}

// TestScripts runs testscripts/*.txtar: the user-visible contract (output,
// exit codes, environment), one script per behaviour.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testscripts",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Keep the developer's own configuration out of the scripts.
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("USER", "tester")
			env.Setenv("NO_COLOR", "")
			return nil
		},
		// [history] is false on an etcd (CLAIMCTL_TEST_ETCD, from
		// scripts/compat.sh) that claimctl history refuses.
		Condition: func(cond string) (bool, error) {
			if cond != "history" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			return historyServer(), nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"etcd":      cmdEtcd,
			"waitqueue": cmdWaitQueue,
			"envfile":   cmdEnvFile,
			"rising":    cmdRising,
			"exits":     cmdExits,
			"waitfile":  cmdWaitFile,
			"compact":   cmdCompact,
		},
	})
}

// cmdEtcd starts an embedded etcd member for the script and points claimctl
// at it through CLAIMCTL_ENDPOINTS. With -auth it also enables etcd
// authentication with three users (password "secret" for all):
// root, claimer (read/write on claimctl/ only) and stranger (read/write on
// other/ only).
func cmdEtcd(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! etcd")
	}
	srv, err := etcdtest.StartEmbedded(ts.MkAbs("etcd-data"))
	if err != nil {
		ts.Fatalf("start etcd: %v", err)
	}
	ts.Defer(srv.Close)
	endpoints := strings.Join(srv.ClientURLs(), ",")
	ts.Setenv("CLAIMCTL_ENDPOINTS", endpoints)
	ts.Setenv("ETCD_ENDPOINTS", endpoints)
	if len(args) == 1 && args[0] == "-auth" {
		if err := etcdtest.EnableAuth(srv.ClientURLs()); err != nil {
			ts.Fatalf("enable auth: %v", err)
		}
	} else if len(args) > 0 {
		ts.Fatalf("usage: etcd [-auth]")
	}
}

// cmdWaitQueue waits until claim NAME has at least N waiters, so a script
// can release a holder only once a background contender is queued:
//
//	waitqueue NAME N
func cmdWaitQueue(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitqueue NAME N")
	}
	endpoints := strings.Split(ts.Getenv("CLAIMCTL_ENDPOINTS"), ",")
	prefix := ts.Getenv("CLAIMCTL_PREFIX")
	if prefix == "" {
		prefix = "claimctl/"
	}
	var want int
	if _, err := fmt.Sscan(args[1], &want); err != nil {
		ts.Fatalf("waitqueue: bad count %q", args[1])
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		ts.Fatalf("waitqueue: %v", err)
	}
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, prefix+args[0]+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err == nil && resp.Count >= int64(want)+1 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitqueue: claim %s did not get %d waiter(s) within 15s (err %v)", args[0], want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdEnvFile sets an environment variable to a file's contents without the
// trailing newline, as $(cat FILE) would:
//
//	envfile NAME FILE
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	ts.Setenv(args[0], strings.TrimRight(ts.ReadFile(args[1]), "\n"))
}

// cmdCompact compacts the script's etcd at its current revision, as an
// operator's retention policy would, so that history can be tested with
// part of it gone:
//
//	compact
func cmdCompact(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: compact")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(ts.Getenv("CLAIMCTL_ENDPOINTS"), ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		ts.Fatalf("compact: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "compact", clientv3.WithCountOnly())
	if err == nil {
		_, err = cli.Compact(ctx, resp.Header.Revision)
	}
	if err != nil {
		ts.Fatalf("compact: %v", err)
	}
}

// cmdRising checks that the tokens in the given files (one token per file,
// as acquire prints it) carry strictly increasing fencing tokens:
//
//	rising FILE1 FILE2 ...
func cmdRising(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: rising FILE1 FILE2 ...")
	}
	var prev int64
	for _, f := range args {
		tok, err := claim.ParseToken(ts.ReadFile(f))
		if err != nil {
			ts.Fatalf("%s: %v", f, err)
		}
		if tok.Revision <= prev {
			ts.Fatalf("%s has fencing token %d, not above the previous %d", f, tok.Revision, prev)
		}
		prev = tok.Revision
	}
}

// cmdExits runs a program like exec and checks its exact exit code, so that
// each documented exit code is tested one by one:
//
//	exits CODE PROGRAM ARGS...
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
	}
}

// cmdWaitFile waits (at most 15s) until a file exists, so a script can act
// once a background command reached a point:
//
//	waitfile FILE
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile: %s did not appear within 15s", args[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// historyServer reports whether the etcd the scripts run against can serve
// claimctl history: the embedded one can; an upstream one
// (etcdtest.EtcdEnv) by its version.
func historyServer() bool {
	bin := os.Getenv(etcdtest.EtcdEnv)
	if bin == "" {
		return true
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			return claim.HistoryUnsupported(strings.TrimSpace(v)) == ""
		}
	}
	return true
}
