// Package supervise starts the child process of `claimctl run` and keeps
// control of it and of everything it spawns, so that a claim is never
// released while a process started under it is still alive.
//
// The child runs in a process group of its own. Signals go to the whole
// group, and "done" means the group is empty, not merely that the direct
// child exited. Three mechanisms keep the group from outliving this process
// even when it is SIGKILLed or OOM-killed:
//
//   - PR_SET_PDEATHSIG=SIGKILL on the direct child. The kernel fires it when
//     the OS thread that forked the child exits (not the process), so the
//     child is forked from a goroutine that keeps its thread locked until
//     the child has been reaped.
//   - A guardian (see Spec.NoGuardian): a tiny /bin/sh, outside the child's
//     group, that blocks reading a pipe only this process can write. When
//     this process dies the pipe reaches EOF and the guardian SIGKILLs the
//     group, reaching the grandchildren Pdeathsig cannot. On a normal end it
//     is told to stand down.
//   - Start makes the calling process a child subreaper, so processes
//     orphaned inside the group are reparented to it and reaped here: a
//     zombie still counts as a member of its group.
//
// All reaping happens in one goroutine per Child, with wait4(-pgid) (members
// of the child's group only) and wait4(guardian pid). Processes started
// elsewhere in the program, for example with os/exec, are never reaped
// here. In return the program must not reap children it did not start
// (wait4(-1), or SIGCHLD set to SIG_IGN), or the child's status is lost.
//
// A child can be given the terminal (Spec.Terminal): its group becomes the
// terminal's foreground group before it execs, its stops are reported
// (Child.Stopped) so that the caller can relay job control, and the jobs it
// starts in groups of their own in the same session (an interactive shell's)
// are stopped and awaited with its group (strays.go).
//
// Linux only: Start relies on PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER and
// waitid(P_PGID). On other platforms the package compiles, so that the rest
// of claimctl does, but Start always fails (supervise_other.go).
package supervise
