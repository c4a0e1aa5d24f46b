//go:build linux

package e2e

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// recipes returns the code blocks of docs/recipes.md marked with
// <!-- recipe: NAME -->, by name.
func recipes(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../docs/recipes.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	name, in := "", false
	var body strings.Builder
	sc := bufio.NewScanner(f)
	marker := regexp.MustCompile(`^<!-- recipe: (\S+) -->$`)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case marker.MatchString(line):
			name = marker.FindStringSubmatch(line)[1]
		case name != "" && !in && strings.HasPrefix(line, "```"):
			in = true
			body.Reset()
		case in && line == "```":
			out[name], name, in = body.String(), "", false
		case in:
			body.WriteString(line + "\n")
		}
	}
	return out
}

// recipeEnv is a scratch home with claimctl, claimctl-server and stand-ins
// for the jobs the recipes run, all on PATH.
type recipeEnv struct {
	t         *testing.T
	dir       string
	env       []string
	endpoints []string
}

func newRecipeEnv(t *testing.T, endpoints []string) *recipeEnv {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{claimctlBin, serverBin} {
		if err := os.Symlink(b, filepath.Join(bin, filepath.Base(b))); err != nil {
			t.Fatal(err)
		}
	}
	// Each stand-in job records that it ran, with start and end times.
	// deploy.sh is run as ./deploy.sh, from the job's directory.
	for _, job := range []string{"nightly-report", "deploy.sh", "step-one", "step-two", "../deploy.sh"} {
		name := filepath.Base(job)
		script := "#!/bin/sh\necho \"start $(date +%s%N) $*\" >> \"$HOME/" + name + ".log\"\n" +
			"${STANDIN_CHECK:-true}\nsleep ${STANDIN_SLEEP:-0.3}\necho \"end $(date +%s%N)\" >> \"$HOME/" + name + ".log\"\n"
		if err := os.WriteFile(filepath.Join(bin, job), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "HOME="+dir, "PATH="+bin+":"+os.Getenv("PATH"), "USER=recipe",
		"XDG_CONFIG_HOME="+filepath.Join(dir, ".config"), "CI_JOB_URL=https://ci.example/jobs/1", "CI_PIPELINE_ID=7")
	if endpoints != nil {
		env = append(env, "CLAIMCTL_ENDPOINTS="+strings.Join(endpoints, ","))
	}
	return &recipeEnv{t: t, dir: dir, env: env, endpoints: endpoints}
}

// quick shortens the recipes' waiting durations so that tests do not sit
// through a real minute of --min-hold; nothing else in a recipe changes.
func quick(script string) string {
	return strings.ReplaceAll(script, "--min-hold 1m", "--min-hold 1s")
}

// sh runs script with sh in the recipe home and returns its combined output
// and exit code.
func (r *recipeEnv) sh(script string, extraEnv ...string) (string, int) {
	r.t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir, cmd.Env = r.dir, append(r.env, extraEnv...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return string(out), code
}

func (r *recipeEnv) jobLog(job string) []string {
	b, _ := os.ReadFile(filepath.Join(r.dir, job+".log"))
	return strings.Fields(strings.ReplaceAll(string(b), "\n", " | "))
}

func (r *recipeEnv) runs(job string) int {
	b, _ := os.ReadFile(filepath.Join(r.dir, job+".log"))
	return strings.Count(string(b), "start ")
}

func TestRecipeCronRunsOncePerTick(t *testing.T) {
	rec := recipes(t)
	r := newRecipeEnv(t, etcdtest.Start(t).Endpoints())
	var wg sync.WaitGroup
	codes := make([]int, 3)
	outs := make([]string, 3)
	for host := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); outs[host], codes[host] = r.sh(quick(rec["cron"])) }()
	}
	wg.Wait()
	for host, code := range codes {
		if code != 0 {
			t.Fatalf("host %d: exit %d: %s", host, code, outs[host])
		}
	}
	if n := r.runs("nightly-report"); n != 1 {
		t.Fatalf("the job ran %d times across 3 hosts in one tick, want 1: %v", n, r.jobLog("nightly-report"))
	}
}

func TestRecipeSystemdService(t *testing.T) {
	unit := recipes(t)["systemd-service"]
	if !strings.Contains(unit, "\nKillMode=control-group\n") {
		t.Fatal("the service recipe lost KillMode=control-group")
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart in the service recipe")
	}
	r := newRecipeEnv(t, etcdtest.Start(t).Endpoints())
	cmdline := quick(strings.ReplaceAll(m[1], "/usr/local/bin/", r.dir+"/bin/"))
	if out, code := r.sh(cmdline); code != 0 || r.runs("nightly-report") != 1 {
		t.Fatalf("ExecStart: exit %d, %d runs: %s", code, r.runs("nightly-report"), out)
	}
}

func TestRecipeCISerializesDeploys(t *testing.T) {
	rec := recipes(t)
	r := newRecipeEnv(t, etcdtest.Start(t).Endpoints())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, code := r.sh(rec["ci-serialize"]); code != 0 {
				t.Errorf("deploy job: exit %d: %s", code, out)
			}
		}()
	}
	wg.Wait()
	// start, end, start, end: the second deploy began after the first ended.
	b, _ := os.ReadFile(filepath.Join(r.dir, "deploy.sh.log"))
	var kinds []string
	var times []int64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("deploy log line %q", line)
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		kinds, times = append(kinds, f[0]), append(times, n)
	}
	if strings.Join(kinds, ",") != "start,end,start,end" || times[2] < times[1] {
		t.Fatalf("deploys overlapped or did not both run:\n%s", b)
	}
}

func TestRecipeCIAcquireAndReleaseAcrossJobs(t *testing.T) {
	rec := recipes(t)
	r := newRecipeEnv(t, etcdtest.Start(t).Endpoints())
	output := filepath.Join(r.dir, "github-output")
	if out, code := r.sh(rec["ci-acquire"], "GITHUB_OUTPUT="+output); code != 0 {
		t.Fatalf("first job: exit %d: %s", code, out)
	}
	b, _ := os.ReadFile(output)
	token, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "claim-token=")
	if !ok || !strings.HasPrefix(token, "ct1.") {
		t.Fatalf("$GITHUB_OUTPUT = %q, want claim-token=ct1...", b)
	}
	if out, _ := r.sh("claimctl status staging-env"); !strings.Contains(out, "pipeline 7") {
		t.Fatalf("between the jobs the claim is not held by the pipeline:\n%s", out)
	}
	if out, code := r.sh(rec["ci-release"], "CLAIM_TOKEN="+token); code != 0 {
		t.Fatalf("last job: exit %d: %s", code, out)
	}
	if out, _ := r.sh("claimctl status staging-env"); !strings.Contains(out, "staging-env is free") {
		t.Fatalf("after the last job the claim is still held:\n%s", out)
	}
}

func TestRecipeScriptHoldsAcrossStepsAndReleases(t *testing.T) {
	rec := recipes(t)
	r := newRecipeEnv(t, etcdtest.Start(t).Endpoints())
	script := filepath.Join(r.dir, "migrate.sh")
	if err := os.WriteFile(script, []byte(rec["script"]), 0o755); err != nil {
		t.Fatal(err)
	}
	// Each step checks that the claim is held while it runs.
	check := `STANDIN_CHECK=sh -c "claimctl status migrate-db | grep -q holder || { echo step ran unclaimed >&2; exit 1; }"`
	if out, code := r.sh(script, check); code != 0 || r.runs("step-one") != 1 || r.runs("step-two") != 1 {
		t.Fatalf("script: exit %d, runs %d/%d: %s", code, r.runs("step-one"), r.runs("step-two"), out)
	}
	if out, _ := r.sh("claimctl status migrate-db"); !strings.Contains(out, "is free") {
		t.Fatalf("the script did not release the claim:\n%s", out)
	}
	// Cancelled in the middle, as CI cancels a job (SIGTERM to its process
	// group): run still releases.
	cmd := exec.Command("sh", script)
	cmd.Dir, cmd.Env = r.dir, append(r.env, "STANDIN_SLEEP=5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var cancelled syncBuffer
	cmd.Stdout, cmd.Stderr = &cancelled, &cancelled
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the script to reach step one", func() bool { return r.runs("step-one") == 2 })
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := r.sh("claimctl status migrate-db")
		if strings.Contains(out, "is free") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the claim was not released within 10s of cancelling the script:\n%s\nscript output:\n%s", out, cancelled.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRecipeFencedWrite(t *testing.T) {
	fn := recipes(t)["fence"]
	r := newRecipeEnv(t, nil)
	script := fn + `
CLAIMCTL_FENCING_TOKEN=5 fenced_write store "first holder"
CLAIMCTL_FENCING_TOKEN=9 fenced_write store "next holder"
CLAIMCTL_FENCING_TOKEN=7 fenced_write store "stale holder" && exit 3
cat store`
	out, code := r.sh(script)
	if code != 0 || !strings.Contains(out, "refused: fencing token 7 is older than 9") || strings.Contains(out, "stale holder\n") {
		t.Fatalf("fenced_write: exit %d:\n%s", code, out)
	}
	if !strings.HasSuffix(out, "5 first holder\n9 next holder\n") {
		t.Fatalf("the store lost a write or kept a stale one:\n%s", out)
	}
}

func TestRecipeTLSConfigHasOnlyKnownKeys(t *testing.T) {
	r := newRecipeEnv(t, nil)
	cfg := filepath.Join(r.dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(recipes(t)["tls-config"]), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every key is accepted; the files it names do not exist here, which
	// is the configuration error that comes next.
	out, code := r.sh("claimctl --config config.yaml list")
	if code != 78 || !strings.Contains(out, "password file") && !strings.Contains(out, "TLS configuration") {
		t.Fatalf("exit %d, want 78 about the files it names:\n%s", code, out)
	}
}

func TestRecipeThreeMemberCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three etcd members")
	}
	block := recipes(t)["cluster"]
	// Same recipe on free ports, all distinct: the listeners stay open until
	// every port is picked, or the kernel may hand one port out twice.
	var listeners []net.Listener
	for _, port := range []string{"2379", "2380", "2389", "2390", "2399", "2400"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		block = strings.ReplaceAll(block, ":"+port, ":"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range listeners {
		l.Close()
	}
	r := newRecipeEnv(t, nil)
	pids := filepath.Join(r.dir, "pids")
	// Wait for the members before doctor, and leave the pids for clean-up.
	block = strings.Replace(block, "claimctl doctor", "jobs -p > "+pids+"\nfor i in $(seq 100); do claimctl doctor >/dev/null 2>&1 && break; sleep 0.2; done\nclaimctl doctor", 1)
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, p := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	// The members run on in the background: send output to a file, since
	// they would hold a pipe open.
	outFile, err := os.Create(filepath.Join(r.dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "bash", "-c", block)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.dir, r.env, outFile, outFile
	err = cmd.Run()
	out, _ := os.ReadFile(outFile.Name())
	if err != nil || strings.Count(string(out), "(leader)") != 1 || strings.Count(string(out), "(follower)") != 2 || !strings.Contains(string(out), "claimctl is ready to use") {
		t.Fatalf("cluster recipe: %v\n%s", err, out)
	}
}
