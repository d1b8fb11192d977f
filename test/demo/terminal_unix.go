//go:build unix

package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// foreground moves the demo into a process group of its own and makes that
// the terminal's foreground group, so that Ctrl-C reaches the demo alone.
// Under `make demo`, the terminal would otherwise send SIGINT to make as
// well, and make dies of it (exit status 130, "*** [demo] Interrupt") however
// cleanly the demo stops. It returns the function that gives the terminal
// back. Without a terminal, or run in the background, it does nothing.
func foreground() (release func()) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return func() {}
	}
	fd := int(tty.Fd())
	group, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || group != unix.Getpgrp() {
		tty.Close()
		return func() {}
	}
	// A background group that sets the foreground group gets SIGTTOU, which
	// would stop the demo: here, and when it gives the terminal back.
	signal.Ignore(unix.SIGTTOU)
	if err := unix.Setpgid(0, 0); err != nil {
		tty.Close()
		return func() {}
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpid()); err != nil {
		_ = unix.Setpgid(0, group)
		tty.Close()
		return func() {}
	}
	// Ctrl-Z would stop the demo with no shell to resume it: the shell
	// waits for make, which runs on.
	signal.Ignore(unix.SIGTSTP)
	return func() {
		_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, group)
		tty.Close()
	}
}
