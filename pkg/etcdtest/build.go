//go:build linux || darwin

package etcdtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerBinEnv names an environment variable that, when set, is the path
// of a claimctl-server binary for StartCluster to run instead of building
// one (for CI that has built it already).
const ServerBinEnv = "CLAIMCTL_SERVER_BIN"

// serverPackage is what StartCluster builds.
const serverPackage = "github.com/claimctl/claimctl/claimctl-server"

// buildTimeout bounds building claimctl-server, which compiles etcd when
// the build cache is cold.
const buildTimeout = 5 * time.Minute

// sharedBuild is the package's only mutable package-level state: the
// claimctl-server binary, built at most once per test binary, because
// linking etcd takes seconds and every StartCluster needs it.
//
// It is built into the user's cache directory (os.UserCacheDir, one binary
// per module checkout: claimctl-etcdtest/<hash>/claimctl-server), not a temporary
// directory, because nothing runs when a test binary exits to remove a
// temporary one: 35 MB would be left behind per run. There, "go build" finds
// the binary up to date in a fraction of a second and relinks only after
// the sources change. Test binaries running in parallel share it under a
// file lock: exclusive while building, shared while starting a process.
var sharedBuild struct {
	once sync.Once
	bin  serverBinary
	err  error
}

// serverBinary is a claimctl-server executable, and the lock file that
// guards it when it is shared; or an upstream etcd (see EtcdEnv).
type serverBinary struct {
	path string
	lock string      // "" when not shared
	etcd *etcdBinary // nil for claimctl-server
}

// findServerBinary returns the binary StartCluster runs: the etcd named by
// EtcdEnv if set, else claimctl-server, building it if needed. It fails the
// test if it cannot.
func findServerBinary(t testing.TB) serverBinary {
	t.Helper()
	e, err := upstreamEtcd()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	if e != nil {
		return serverBinary{path: e.path, etcd: e}
	}
	if p := os.Getenv(ServerBinEnv); p != "" {
		return serverBinary{path: p}
	}
	sharedBuild.once.Do(func() {
		sharedBuild.bin, sharedBuild.err = buildShared()
	})
	if sharedBuild.err == nil {
		return sharedBuild.bin
	}
	if !errors.Is(sharedBuild.err, errNoCacheDir) {
		t.Fatalf("etcdtest: %v", sharedBuild.err)
	}
	// No usable cache directory: build into this test's own.
	bin := serverBinary{path: filepath.Join(t.TempDir(), "claimctl-server")}
	if err := goBuild(bin.path); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return bin
}

var errNoCacheDir = errors.New("no cache directory for the claimctl-server build")

func buildShared() (serverBinary, error) {
	gomod, err := goCommand("env", "GOMOD")
	if err != nil {
		return serverBinary{}, err
	}
	gomod = strings.TrimSpace(gomod)
	if gomod == "" || gomod == os.DevNull {
		return serverBinary{}, fmt.Errorf("build %s: not inside its module (go env GOMOD = %q)", serverPackage, gomod)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return serverBinary{}, fmt.Errorf("%w: %w", errNoCacheDir, err)
	}
	sum := sha256.Sum256([]byte(filepath.Dir(gomod)))
	dir := filepath.Join(cache, "claimctl-etcdtest", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return serverBinary{}, fmt.Errorf("%w: %w", errNoCacheDir, err)
	}
	bin := serverBinary{path: filepath.Join(dir, "claimctl-server"), lock: filepath.Join(dir, "lock")}
	err = bin.withLock(syscall.LOCK_EX, func() error { return goBuild(bin.path) })
	return bin, err
}

// withLock runs f holding the binary's lock in mode (syscall.LOCK_SH or
// LOCK_EX), or without a lock if the binary is not shared.
func (b serverBinary) withLock(mode int, f func() error) error {
	if b.lock == "" {
		return f()
	}
	lf, err := os.OpenFile(b.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", b.lock, err)
	}
	defer lf.Close() // closing releases the lock
	for {
		err = syscall.Flock(int(lf.Fd()), mode)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", b.lock, err)
	}
	return f()
}

func goBuild(out string) error {
	if _, err := goCommand("build", "-o", out, serverPackage); err != nil {
		return err
	}
	return nil
}

// goCommand runs the go command that is running the tests ("go test" puts
// its own GOROOT/bin first on PATH) in the current directory, which is
// inside the module.
func goCommand(args ...string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find the go command to build %s: %w", serverPackage, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
