// Command section is the critical section the benchmarks run under a claim:
// it appends "start" to a log, sleeps, and appends "end", each line in one
// write(2) to a file opened with O_APPEND, stamped with CLOCK_MONOTONIC so
// the driver can line up intervals from many processes. It is kept tiny
// (no etcd, no flags package) so that its own start-up adds as little as
// possible to what is measured.
//
// Usage: section LOG HOLD LABEL
//
// Lines: "start NS PID LABEL TOKEN" and "end NS PID LABEL", where TOKEN is
// the fencing token the tool exported (CLAIMCTL_FENCING_TOKEN for claimctl,
// ETCD_LOCK_REV for etcdctl lock) or "-". SIGTERM ends it at once (Go's
// default), which is what the network-cut scenario observes.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/claimctl/claimctl/bench/internal/mono"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: section LOG HOLD LABEL")
		os.Exit(2)
	}
	hold, err := time.ParseDuration(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "section:", err)
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "section:", err)
		os.Exit(1)
	}
	label := os.Args[3]
	token := "-"
	for _, k := range []string{"CLAIMCTL_FENCING_TOKEN", "ETCD_LOCK_REV"} {
		if v := os.Getenv(k); v != "" {
			token = v
		}
	}
	write(f, fmt.Sprintf("start %d %d %s %s\n", mono.Now(), os.Getpid(), label, token))
	time.Sleep(hold)
	write(f, fmt.Sprintf("end %d %d %s\n", mono.Now(), os.Getpid(), label))
}

func write(f *os.File, line string) {
	if _, err := f.WriteString(line); err != nil {
		fmt.Fprintln(os.Stderr, "section:", err)
		os.Exit(1)
	}
}
