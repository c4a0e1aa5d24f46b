package supervise

import (
	"strconv"
	"syscall"
)

// SignalName is "TERM" for SIGTERM, or the number for other signals. Windows
// has no signal names of its own; these are the POSIX ones Go defines there.
func SignalName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGILL: "ILL",
		syscall.SIGTRAP: "TRAP", syscall.SIGABRT: "ABRT", syscall.SIGBUS: "BUS", syscall.SIGFPE: "FPE",
		syscall.SIGKILL: "KILL", syscall.SIGSEGV: "SEGV", syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM",
		syscall.SIGTERM: "TERM",
	}
	if n, ok := names[sig]; ok {
		return n
	}
	return strconv.Itoa(int(sig))
}
