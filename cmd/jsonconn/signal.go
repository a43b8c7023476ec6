package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Signals: the first SIGINT or SIGTERM asks a command to shut down cleanly,
// the second exits at once.

// interrupts returns a context that is cancelled by the first signal on
// e.signals, and a function that reports the exit status for that signal,
// or -1 if none came. A second signal exits the process at once. cmd names
// the command in what it prints.
func interrupts(e *env, cmd string) (ctx context.Context, status func() int, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu  sync.Mutex
		got os.Signal
	)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-e.signals:
			mu.Lock()
			got = sig
			mu.Unlock()
			fmt.Fprintf(e.stderr, "jsonconn %s: %v: shutting down (%v again exits at once)\n", cmd, sig, sig)
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-e.signals:
			fmt.Fprintf(e.stderr, "jsonconn %s: %v again: exiting now\n", cmd, sig)
			forcedExit.Lock()
			for _, f := range forcedExit.cleanups {
				f()
			}
			forcedExit.Unlock()
			osExit(signalStatus(sig))
		case <-done:
		}
	}()
	status = func() int {
		mu.Lock()
		defer mu.Unlock()
		if got == nil {
			return -1
		}
		return signalStatus(got)
	}
	return ctx, status, func() { close(done); cancel() }
}

// osExit is os.Exit, replaced in tests.
var osExit = os.Exit

// forcedExit holds what must be undone even when a second signal exits at
// once, such as a Unix socket's file, which the listener's Close would
// have removed.
var forcedExit struct {
	sync.Mutex
	cleanups []func()
}

// atForcedExit registers f to run if a second signal exits the process.
func atForcedExit(f func()) {
	forcedExit.Lock()
	defer forcedExit.Unlock()
	forcedExit.cleanups = append(forcedExit.cleanups, f)
}

// signalStatus is the shell's status for a process killed by sig: 128 plus
// the signal's number.
func signalStatus(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitError
}
