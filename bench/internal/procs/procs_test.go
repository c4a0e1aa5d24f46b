package procs

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/claimctl/claimctl/bench/internal/mono"
)

func TestWatchExitSeesTheExit(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	started := mono.Now()
	w, err := WatchExit(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, gone := w.At(); gone {
		t.Fatal("reported gone while running")
	}
	go cmd.Wait()
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("exit not seen within 5s")
	}
	at, gone := w.At()
	if d := time.Duration(at - started); !gone || d < 150*time.Millisecond || d > 3*time.Second {
		t.Fatalf("exit seen %v after start (gone %v), want about 200ms", d, gone)
	}
}

func TestReadMemoryAndCPU(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil || m.HWM < m.RSS || m.RSS <= 0 {
		t.Fatalf("ReadMemory = %+v, %v", m, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestKillIfExeSparesOtherPrograms(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer cmd.Process.Kill()
	if KillIfExe(cmd.Process.Pid, "/not/sleep") {
		t.Fatal("killed a process running another executable")
	}
	if !KillIfExe(cmd.Process.Pid, Exe(cmd.Process.Pid)) {
		t.Fatal("did not kill the matching process")
	}
	cmd.Wait()
}
