//go:build linux

package supervise

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ForegroundGroup returns the foreground process group of the terminal
// tty (tcgetpgrp).
func ForegroundGroup(tty *os.File) (int, error) {
	pgid, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return 0, fmt.Errorf("foreground group of %s: %w", tty.Name(), err)
	}
	return pgid, nil
}

// IsForeground reports whether tty is a terminal whose foreground process
// group is this process's group: only then may a child be given the
// terminal (Spec.Terminal). A process started in the background (`cmd &`)
// or whose stdin is not a terminal gets false.
func IsForeground(tty *os.File) bool {
	if tty == nil {
		return false
	}
	pgid, err := ForegroundGroup(tty)
	return err == nil && pgid == syscall.Getpgrp()
}

// SetForeground makes pgid the foreground process group of tty
// (tcsetpgrp). It works from the background too: a background process that
// changes the foreground group is sent SIGTTOU (and stopped by it) unless
// the signal is blocked or ignored, so SIGTTOU is blocked on the calling
// thread for the duration of the call. Blocking it on one locked thread,
// rather than ignoring it process-wide, leaves the disposition that
// children inherit untouched.
func SetForeground(tty *os.File, pgid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	sig := uint(syscall.SIGTTOU) - 1
	set.Val[sig/64] |= 1 << (sig % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return fmt.Errorf("block SIGTTOU: %w", err)
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) //nolint:errcheck // restoring a mask we just read
	if err := unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, pgid); err != nil {
		return fmt.Errorf("make process group %d the foreground group of %s: %w", pgid, tty.Name(), err)
	}
	return nil
}

// SuspendSelf stops this process's whole process group with SIGSTOP, as
// the terminal stops a foreground job on Ctrl-Z, and returns once it has
// been continued (SIGCONT, from the shell's fg or bg). The whole group,
// because that is the job the user's shell waits for: it reports the job
// stopped only when every member is. SIGSTOP rather than SIGTSTP because
// it cannot be caught or ignored, whatever dispositions this process
// inherited, so the stop is certain.
func SuspendSelf() {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, syscall.SIGCONT)
	defer signal.Stop(cont)
	if err := syscall.Kill(0, syscall.SIGSTOP); err != nil {
		return
	}
	<-cont
}
