// Command rusage runs a command and writes its wall time, CPU time and peak
// RSS to a file: "WALL_NS CPU_NS MAXRSS_KIB" on one line.
//
// Usage: rusage OUT CMD [ARGS...]
//
// The benchmark driver cannot read a short-lived command's peak RSS itself:
// ru_maxrss of a process counts the address space it was forked from (Linux
// keeps the larger of the old and new mm's high-water marks across execve,
// and Go's os/exec forks with CLONE_VM), so every command the driver starts
// would report at least the driver's own RSS. Started from this small
// process instead, the figure is the command's own. Its stdin, stdout and
// stderr are the command's; it exits with the command's status.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: rusage OUT CMD [ARGS...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		os.Exit(127)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		ru = &syscall.Rusage{}
	}
	line := fmt.Sprintf("%d %d %d\n", wall.Nanoseconds(), ru.Utime.Nano()+ru.Stime.Nano(), ru.Maxrss)
	if err := os.WriteFile(os.Args[1], []byte(line), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		os.Exit(1)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
