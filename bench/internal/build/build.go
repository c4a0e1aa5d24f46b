// Package build compiles what the benchmarks run: claimctl and
// claimctl-server from this checkout, the helpers from the bench module,
// and a released etcdctl and etcd server.
package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Timeout bounds each build; a cold module cache has to download and
// compile etcd.
const Timeout = 8 * time.Minute

// releaseEnv and releaseFlags build the two tools (and the server) the way
// their releases are built: claimctl's .goreleaser.yaml and etcd's release
// scripts both build static binaries (CGO_ENABLED=0) with -trimpath and
// without symbol tables. A default `go build` links cgo's resolver and
// os/user on Linux, which adds about a millisecond to every start.
var (
	releaseEnv   = []string{"CGO_ENABLED=0"}
	releaseFlags = []string{"-trimpath", "-ldflags=-s -w"}
)

// Binaries are the paths of the built executables.
type Binaries struct {
	Claimctl, Server, Etcdctl, Etcd, Section, Rusage, Floor, Barrier string
	// EtcdctlVersion is what `etcdctl version` printed; EtcdVersion the
	// first line of `etcd --version`.
	EtcdctlVersion, EtcdVersion string
}

// All builds everything into out. root is the claimctl checkout, bench the
// bench module's directory. logf reports progress.
func All(ctx context.Context, root, bench, out, etcdctlVersion string, logf func(string, ...any)) (Binaries, error) {
	b := Binaries{
		Claimctl: filepath.Join(out, "claimctl"),
		Server:   filepath.Join(out, "claimctl-server"),
		Etcdctl:  filepath.Join(out, "etcdctl"),
		Section:  filepath.Join(out, "section"),
		Rusage:   filepath.Join(out, "rusage"),
		Floor:    filepath.Join(out, "floor"),
		Etcd:     filepath.Join(out, "etcd"),
		Barrier:  filepath.Join(out, "barrier"),
	}
	logf("building claimctl and claimctl-server from %s", root)
	args := append(append([]string{"build"}, releaseFlags...), "-o", out+"/", ".", "./claimctl-server")
	if err := goCmd(ctx, root, releaseEnv, args...); err != nil {
		return b, err
	}
	logf("building the section, rusage, barrier and floor helpers")
	if err := goCmd(ctx, bench, nil, "build", "-o", out+"/", "./cmd/section", "./cmd/rusage", "./cmd/barrier"); err != nil {
		return b, err
	}
	args = append(append([]string{"build"}, releaseFlags...), "-o", b.Floor, "./cmd/floor")
	if err := goCmd(ctx, bench, releaseEnv, args...); err != nil {
		return b, err
	}
	logf("building etcdctl %s in a throwaway module", etcdctlVersion)
	if err := Etcdctl(ctx, etcdctlVersion, b.Etcdctl); err != nil {
		return b, err
	}
	v, err := exec.CommandContext(ctx, b.Etcdctl, "version").Output()
	if err != nil {
		return b, fmt.Errorf("etcdctl version: %w", err)
	}
	b.EtcdctlVersion = strings.TrimSpace(strings.SplitN(string(v), "\n", 2)[0])
	if want := "etcdctl version: " + strings.TrimPrefix(etcdctlVersion, "v"); b.EtcdctlVersion != want {
		return b, fmt.Errorf("built etcdctl reports %q, want %q", b.EtcdctlVersion, want)
	}
	logf("building the etcd server %s in a throwaway module", etcdctlVersion)
	if err := Etcd(ctx, etcdctlVersion, b.Etcd); err != nil {
		return b, err
	}
	v, err = exec.CommandContext(ctx, b.Etcd, "--version").Output()
	if err != nil {
		return b, fmt.Errorf("etcd --version: %w", err)
	}
	b.EtcdVersion = strings.TrimSpace(strings.SplitN(string(v), "\n", 2)[0])
	if want := "etcd Version: " + strings.TrimPrefix(etcdctlVersion, "v"); b.EtcdVersion != want {
		return b, fmt.Errorf("built etcd reports %q, want %q", b.EtcdVersion, want)
	}
	return b, nil
}

// Etcdctl builds the released etcdctl at version into out, unchanged.
//
// `go install go.etcd.io/etcd/etcdctl/v3@VERSION` is refused because
// etcdctl's go.mod has replace directives (they point at its siblings in
// etcd's repository). A module that merely requires etcdctl ignores them
// and resolves the siblings to their released versions, so this writes
// such a module in a temporary directory, whose main calls etcdctl's own
// entry point (ctlv3.MustStart, exactly what etcdctl's main.go does), and
// deletes it after the build. Nothing of it is kept in the repository.
func Etcdctl(ctx context.Context, version, out string) error {
	return release(ctx, "go.etcd.io/etcd/etcdctl/v3", version,
		"import \"go.etcd.io/etcd/etcdctl/v3/ctlv3\"\n\nfunc main() { ctlv3.MustStart() }\n", out)
}

// Etcd builds the released etcd server at version into out, unchanged, the
// same way as Etcdctl: its main is etcd's own (etcdmain.Main(os.Args), as
// in the main.go at the root of etcd's repository), in a throwaway module
// that requires go.etcd.io/etcd/server/v3 at version. Go's build cache
// keeps the compiled packages, so a second build takes seconds.
func Etcd(ctx context.Context, version, out string) error {
	return release(ctx, "go.etcd.io/etcd/server/v3", version,
		"import (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n", out)
}

// release builds a main package whose body (imports and func main) uses
// module at version, in a temporary module deleted afterwards.
func release(ctx context.Context, module, version, body, out string) error {
	dir, err := os.MkdirTemp("", "etcd-release-build")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gomod := "module releasebuild\n\ngo 1.26\n\nrequire " + module + " " + version + "\n"
	mainGo := "// Throwaway build of a released " + module + ".\npackage main\n\n" + body
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644); err != nil {
		return err
	}
	env := []string{"GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod"}
	if err := goCmd(ctx, dir, env, "mod", "tidy"); err != nil {
		return err
	}
	args := append(append([]string{"build"}, releaseFlags...), "-o", out, ".")
	return goCmd(ctx, dir, append(env, releaseEnv...), args...)
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, out)
	}
	return nil
}
