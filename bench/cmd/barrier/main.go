// Command barrier holds a command back until the driver releases every
// copy of it at once: the cron fleet's "same second on every host". It
// opens FIFO for reading, says so with one byte on file descriptor 3 (a
// pipe the driver shares among all copies) and closes it, blocks until the
// FIFO's last writer closes it (the release), then execs CMD in its place,
// so that what the driver times from the release is CMD alone.
//
// Usage: barrier FIFO CMD [ARG...]
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: barrier FIFO CMD [ARG...]")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[2])
	if err != nil {
		fail(err)
	}
	f, err := os.OpenFile(os.Args[1], os.O_RDONLY, 0)
	if err != nil {
		fail(err)
	}
	ready := os.NewFile(3, "ready")
	if _, err := ready.Write([]byte{'r'}); err != nil {
		fail(err)
	}
	ready.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		fail(err)
	}
	f.Close()
	fail(syscall.Exec(path, os.Args[2:], os.Environ()))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "barrier:", err)
	os.Exit(2)
}
