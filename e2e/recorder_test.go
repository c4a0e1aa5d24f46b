//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the child that claimctl runs (a "recorder"),
// selected by E2E_RECORDER=1. A recorder appends facts to the log file
// E2E_LOG, one write(2) per line, with times on CLOCK_BOOTTIME (one clock
// for every process on the machine):
//
//	start LABEL PID T FENCE SLOT  FENCE is $CLAIMCTL_FENCING_TOKEN, SLOT $CLAIMCTL_SLOT
//	alive LABEL T            every 10ms while it runs
//	ack LABEL FENCE          the fenced store (E2E_STORE) accepted its write
//	rejected LABEL FENCE     the fenced store refused it (a newer token was seen)
//	overlap LABEL PID        at start, if a process named in E2E_MUST_BE_DEAD still lives
//	end LABEL T              on a normal end after E2E_RUN_FOR
//
// With E2E_GRANDCHILD=1 it first starts a grandchild (sleep) in its process
// group and records "grandchild LABEL PID". With E2E_IGNORE_TERM=1 it
// ignores SIGTERM.
func recorderMain() {
	label := os.Getenv("E2E_LABEL")
	logf := func(format string, args ...any) {
		f, err := os.OpenFile(os.Getenv("E2E_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "recorder:", err)
			os.Exit(2)
		}
		_, _ = f.WriteString(fmt.Sprintf(format, args...) + "\n")
		f.Close()
	}
	if os.Getenv("E2E_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	for _, p := range strings.Fields(os.Getenv("E2E_MUST_BE_DEAD")) {
		if pid, err := strconv.Atoi(p); err == nil && alive(pid) {
			logf("overlap %s %d", label, pid)
		}
	}
	if os.Getenv("E2E_GRANDCHILD") == "1" {
		gc := exec.Command("sleep", "300")
		if err := gc.Start(); err != nil {
			logf("error %s %v", label, err)
			os.Exit(2)
		}
		logf("grandchild %s %d", label, gc.Process.Pid)
	}
	fence, _ := strconv.ParseInt(os.Getenv("CLAIMCTL_FENCING_TOKEN"), 10, 64)
	logf("start %s %d %d %d %s", label, os.Getpid(), now(), fence, os.Getenv("CLAIMCTL_SLOT"))
	if store := os.Getenv("E2E_STORE"); store != "" {
		if ok, err := fencedWrite(store, label, fence); err != nil {
			logf("error %s %v", label, err)
		} else if ok {
			logf("ack %s %d", label, fence)
		} else {
			logf("rejected %s %d", label, fence)
		}
	}
	runFor, _ := time.ParseDuration(os.Getenv("E2E_RUN_FOR"))
	if runFor == 0 {
		runFor = time.Hour
	}
	end := time.Now().Add(runFor)
	for time.Now().Before(end) {
		logf("alive %s %d", label, now())
		time.Sleep(10 * time.Millisecond)
	}
	logf("end %s %d", label, now())
	os.Exit(0)
}

// now is the boot-time clock in nanoseconds.
func now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return ts.Nano()
}

// record is what a recorder wrote.
type record struct {
	starts     map[string]int64  // label -> start time
	pids       map[string]int    // label -> pid
	fences     map[string]int64  // label -> fencing token
	slots      map[string]string // label -> slot
	acks       map[string]int64  // label -> fencing token the store accepted
	grandkids  map[string]int    // label -> grandchild pid
	lastAlive  map[string]int64  // label -> last alive time
	ends       map[string]int64
	overlaps   []string
	errorsSeen []string
}

func readRecord(path string) (record, error) {
	r := record{starts: map[string]int64{}, pids: map[string]int{}, fences: map[string]int64{}, slots: map[string]string{}, grandkids: map[string]int{},
		lastAlive: map[string]int64{}, ends: map[string]int64{}, acks: map[string]int64{}}
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return r, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		num := func(i int) int64 {
			if i >= len(f) {
				return 0
			}
			n, _ := strconv.ParseInt(f[i], 10, 64)
			return n
		}
		switch f[0] {
		case "start":
			r.pids[f[1]], r.starts[f[1]], r.fences[f[1]] = int(num(2)), num(3), num(4)
			if len(f) > 5 {
				r.slots[f[1]] = f[5]
			}
		case "ack":
			r.acks[f[1]] = num(2)
		case "alive":
			if t := num(2); t > r.lastAlive[f[1]] {
				r.lastAlive[f[1]] = t
			}
		case "end":
			r.ends[f[1]] = num(2)
		case "grandchild":
			r.grandkids[f[1]] = int(num(2))
		case "overlap":
			r.overlaps = append(r.overlaps, line)
		case "error":
			r.errorsSeen = append(r.errorsSeen, line)
		}
	}
	return r, nil
}
