//go:build linux

package supervise

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a stand-in for `claimctl run` (helperMain)
// when helperEnv is set, so that a test can SIGKILL the supervising process.
const (
	helperEnv    = "SUPERVISE_TEST_HELPER" // "guardian" or "noguardian"
	helperDirEnv = "SUPERVISE_TEST_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Getenv(helperDirEnv)))
	}
	os.Exit(m.Run())
}

// helperMain starts a child with a grandchild, from a goroutine whose OS
// thread then ends, churns threads and the GC, prints "CHILD GRANDCHILD
// GUARDIAN" on stdout (GUARDIAN is 0 without one) and waits to be killed.
func helperMain(mode, dir string) int {
	spec := shell(`sleep 60 & echo $! > "$1"; wait`, filepath.Join(dir, "gc.pid"))
	spec.NoGuardian = mode == "noguardian"
	type result struct {
		c   *Child
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		c, err := Start(spec)
		res <- result{c, err}
	}()
	r := <-res
	if r.err != nil {
		fmt.Fprintln(os.Stderr, "helper:", r.err)
		return 1
	}
	c := r.c

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			runtime.LockOSThread() // ends another thread
			runtime.GC()
		})
	}
	wg.Wait()

	var gc int
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "gc.pid"))
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			if _, err := fmt.Sscan(string(b), &gc); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "helper: no grandchild pid")
			return 1
		}
	}
	if !alive(c.Pid()) {
		fmt.Fprintln(os.Stderr, "helper: child died while threads came and went")
		return 1
	}
	guardian := 0
	if c.guard != nil {
		guardian = c.guard.pid
	}
	fmt.Printf("%d %d %d\n", c.Pid(), gc, guardian)
	select {
	case <-c.GroupDone():
		fmt.Fprintln(os.Stderr, "helper: group ended by itself:", c.Status())
	case <-time.After(time.Minute):
		fmt.Fprintln(os.Stderr, "helper: was not killed")
	}
	return 1
}

// TestParentDeath SIGKILLs a supervising process and checks what survives
// it. Not parallel: it measures how fast the group dies.
func TestParentDeath(t *testing.T) {
	t.Run("guardian", func(t *testing.T) { testParentDeath(t, "guardian") })
	t.Run("no guardian", func(t *testing.T) { testParentDeath(t, "noguardian") })
}

func testParentDeath(t *testing.T, mode string) {
	const deadline = time.Second // the promise: dead within about a second
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	helperDone := false
	t.Cleanup(func() {
		if !helperDone {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	var child, gc, guardian int
	select {
	case s := <-line:
		if _, err := fmt.Sscan(s, &child, &gc, &guardian); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			helperDone = true
			t.Fatalf("helper printed %q (%v); stderr: %s", s, err, stderr.String())
		}
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for the helper's pids", waitTimeout)
	}
	// Whatever survives is killed, and reaped if it was reparented to us.
	t.Cleanup(func() {
		_ = syscall.Kill(-child, syscall.SIGKILL)
		if guardian != 0 && alive(guardian) {
			_ = syscall.Kill(guardian, syscall.SIGKILL)
		}
		eventually(t, waitTimeout, fmt.Sprintf("leftovers of group %d to die", child), func() bool {
			for {
				if pid, err := syscall.Wait4(-child, nil, syscall.WNOHANG, nil); err != nil || pid <= 0 {
					break
				}
			}
			if guardian != 0 {
				_, _ = syscall.Wait4(guardian, nil, syscall.WNOHANG, nil)
			}
			return len(ourLeftovers(t, child)) == 0 && (guardian == 0 || !alive(guardian))
		})
	})
	if !alive(child) || !alive(gc) || (mode == "guardian") != (guardian != 0) || (guardian != 0 && !alive(guardian)) {
		t.Fatalf("before the kill: child %d alive %v, grandchild %d alive %v, guardian %d alive %v",
			child, alive(child), gc, alive(gc), guardian, guardian != 0 && alive(guardian))
	}

	t0 := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	helperDone = true

	eventually(t, deadline, fmt.Sprintf("child %d to die with the supervisor (Pdeathsig)", child), func() bool { return !alive(child) })
	tChild := time.Since(t0)
	if mode == "noguardian" {
		// Pdeathsig reaches the direct child only: this is why there is a
		// guardian.
		if !alive(gc) {
			t.Errorf("without a guardian grandchild %d died too; the test no longer shows why the guardian exists", gc)
		}
		t.Logf("no guardian: child dead %v after SIGKILL of the supervisor, grandchild alive as expected", tChild)
		return
	}
	eventually(t, deadline, fmt.Sprintf("grandchild %d to be killed by the guardian", gc), func() bool { return !alive(gc) })
	tGC := time.Since(t0)
	eventually(t, deadline, fmt.Sprintf("guardian %d to exit after its work", guardian), func() bool { return !alive(guardian) })
	t.Logf("after SIGKILL of the supervisor: child dead in %v, grandchild in %v", tChild, tGC)
}
