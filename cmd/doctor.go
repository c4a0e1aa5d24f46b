package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/iostreams"
)

// DoctorOptions are the inputs of `claimctl doctor`.
type DoctorOptions struct {
	f      *Factory
	cmd    *cobra.Command
	Output string
}

// NewCmdDoctor builds `claimctl doctor`.
func NewCmdDoctor(f *Factory, runF func(*DoctorOptions) error) *cobra.Command {
	opts := &DoctorOptions{f: f}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that the configuration works: settings, endpoints, leader, auth, write access",
		Long: `Check, in one screen, whether claimctl will work from here: where each setting
came from (flag, environment, config file, default), each endpoint's health,
version and round-trip time, the leader, whether authentication succeeds, and
whether this user may write under the key prefix (checked with a short-lived
key on a short lease, removed afterwards). Each failure says what to fix.

Exit 0 only when everything claimctl needs works.`,
		Args: noArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.cmd = cmd
			if runF != nil {
				return runF(opts)
			}
			return doctorRun(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output: text or json")
	return cmd
}

// check is one line of the doctor's report.
type check struct {
	Area   string `json:"area"`
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

type doctorReport struct {
	Settings []settingReport `json:"settings"`
	Checks   []check         `json:"checks"`
	OK       bool            `json:"ok"`
}

type settingReport struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

func doctorRun(opts *DoctorOptions) error {
	f := opts.f
	if err := checkOutput(opts.Output, "text", "json"); err != nil {
		return err
	}
	cfg, err := f.Config(opts.cmd)
	if err != nil {
		return err
	}
	rep := &doctorReport{Settings: settingsReport(cfg)}
	code := doctorChecks(opts.cmd.Context(), cfg, rep)
	rep.OK = code == ExitOK
	if opts.Output == "json" {
		if err := writeJSON(f.IO.Out, rep); err != nil {
			return err
		}
	} else {
		printDoctor(f.IO.Out, f.IO.ColorOut(), f.IO.IsStdoutTTY(), rep)
	}
	if code != ExitOK {
		return &exitError{code: code, err: errors.New("doctor found problems"), quiet: true}
	}
	return nil
}

func settingsReport(cfg *Config) []settingReport {
	var out []settingReport
	for _, s := range settings {
		out = append(out, settingReport{Key: s.key, Value: s.display(cfg), Source: cfg.Sources[s.key]})
	}
	return out
}

// doctorChecks runs every check, appends them to rep, and returns the exit
// code the worst failure calls for.
func doctorChecks(ctx context.Context, cfg *Config, rep *doctorReport) int {
	code := ExitOK
	fail := func(c check, exit int) {
		rep.Checks = append(rep.Checks, c)
		if code == ExitOK {
			code = exit
		}
	}
	if err := claim.ValidatePrefix(cfg.Prefix); err != nil {
		fail(check{Area: "config", Name: "prefix", Detail: err.Error(), Fix: "set --prefix to a path ending in '/'"}, ExitUsage)
		return code
	}
	etcd, err := connect(cfg)
	if err != nil {
		fail(check{Area: "auth", Name: "connect", Detail: err.Error(), Fix: "check the endpoints, TLS files, --user and --password"}, exitCode(err))
		return code
	}
	defer etcd.Close()

	checks, healthy, leaders := endpointChecks(ctx, etcd, cfg)
	rep.Checks = append(rep.Checks, checks...)
	if healthy == 0 {
		fail(check{Area: "cluster", Name: "reachable", Detail: "no endpoint answered", Fix: "start etcd (claimctl-server) or fix --endpoints"}, ExitUnavailable)
		return code
	}
	if healthy < len(cfg.Endpoints) {
		code = ExitUnavailable
	}
	switch len(leaders) {
	case 0:
		fail(check{Area: "cluster", Name: "leader", Detail: "no member knows a leader (quorum lost?)", Fix: "bring a majority of members back"}, ExitUnavailable)
		return code
	case 1:
		rep.Checks = append(rep.Checks, check{Area: "cluster", Name: "leader", OK: true, Detail: fmt.Sprintf("member %x", leaders[0])})
	default:
		fail(check{Area: "cluster", Name: "leader", Detail: fmt.Sprintf("members disagree about the leader (%d answers); an election may be under way", len(leaders)), Fix: "run doctor again in a few seconds"}, ExitUnavailable)
	}
	authDetail := "no user configured (etcd authentication off, or anonymous access)"
	if cfg.User != "" {
		authDetail = "authenticated as " + cfg.User
	}
	rep.Checks = append(rep.Checks, check{Area: "auth", Name: "login", OK: true, Detail: authDetail})

	if c, exit := accessCheck(ctx, etcd, cfg); !c.OK {
		fail(c, exit)
	} else {
		rep.Checks = append(rep.Checks, c)
	}
	return code
}

// endpointChecks asks each endpoint for its status, in parallel so that one
// dead member costs one timeout, not one per endpoint, and returns a check
// per endpoint, how many answered and the leaders they name.
func endpointChecks(ctx context.Context, etcd *clientv3.Client, cfg *Config) (checks []check, healthy int, leaders []uint64) {
	type result struct {
		status *clientv3.StatusResponse
		rtt    time.Duration
		err    error
	}
	results := make([]result, len(cfg.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range cfg.Endpoints {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.CommandTimeout)
			defer cancel()
			start := time.Now()
			st, err := etcd.Status(rctx, ep)
			results[i] = result{status: st, rtt: time.Since(start), err: err}
		})
	}
	wg.Wait()
	for i, r := range results {
		ep := cfg.Endpoints[i]
		if r.err != nil {
			checks = append(checks, check{Area: "endpoint", Name: ep, Detail: claim.ClassifyError("status", cfg.Prefix, []string{ep}, r.err).Error(),
				Fix: "check that etcd listens there and that the scheme (http/https) and TLS files match"})
			continue
		}
		healthy++
		st := r.status
		role := "follower"
		if st.Leader == st.Header.MemberId {
			role = "leader"
		}
		if st.Leader != 0 && !slices.Contains(leaders, st.Leader) {
			leaders = append(leaders, st.Leader)
		}
		detail := fmt.Sprintf("etcd %s, member %x (%s), round trip %v", st.Version, st.Header.MemberId, role, r.rtt.Round(10*time.Microsecond))
		if len(st.Errors) > 0 {
			detail += "; member reports: " + strings.Join(st.Errors, "; ")
		}
		checks = append(checks, check{Area: "endpoint", Name: ep, OK: true, Detail: detail})
	}
	return checks, healthy, leaders
}

// accessCheck writes and removes a key under the prefix as a claim would
// (claim.Client.ProbeWrite), and returns its check and, if it failed, the
// exit code it calls for.
func accessCheck(ctx context.Context, etcd *clientv3.Client, cfg *Config) (check, int) {
	name := "write under " + cfg.Prefix
	claims, err := claim.New(etcd, claim.Options{Prefix: cfg.Prefix, RequestTimeout: cfg.CommandTimeout})
	if err == nil {
		err = claims.ProbeWrite(ctx)
	}
	if err == nil {
		return check{Area: "access", Name: name, OK: true, Detail: "created and removed a test key on a short lease"}, ExitOK
	}
	exit := exitCode(err)
	fix := "grant the user's role read and write on the prefix (etcdctl role grant-permission ROLE --prefix=true readwrite " + cfg.Prefix + ")"
	if exit == ExitUnavailable {
		fix = "the cluster did not accept a write: check quorum and the leader"
	}
	return check{Area: "access", Name: name, Detail: err.Error(), Fix: fix}, exit
}

func printDoctor(w io.Writer, colored, tty bool, rep *doctorReport) {
	okMark, failMark := "ok  ", "FAIL"
	if tty {
		okMark, failMark = "✓", "✗"
	}
	okMark = iostreams.Paint(colored, okMark, color.FgGreen)
	failMark = iostreams.Paint(colored, failMark, color.FgRed, color.Bold)
	fmt.Fprintln(w, "Settings")
	for _, s := range rep.Settings {
		v := s.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "  %-25s %-40s %s\n", s.Key, v, s.Source)
	}
	area := ""
	for _, c := range rep.Checks {
		if c.Area != area {
			area = c.Area
			fmt.Fprintf(w, "%s\n", strings.ToUpper(area[:1])+area[1:])
		}
		mark := okMark
		if !c.OK {
			mark = failMark
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
		if !c.OK && c.Fix != "" {
			fmt.Fprintf(w, "       fix: %s\n", c.Fix)
		}
	}
	if rep.OK {
		fmt.Fprintln(w, "claimctl is ready to use")
	} else {
		fmt.Fprintln(w, "claimctl will not work as configured: see the failures above")
	}
}
