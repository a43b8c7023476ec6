// Command jsonconn is netcat for framed JSON: it speaks the jsonconn wire
// format (a 4-byte big-endian length, then one JSON value; see
// docs/protocol.md) from a terminal or a shell script.
//
// Usage:
//
//	jsonconn dial [flags] ADDR     send stdin lines as messages, print the messages received
//	jsonconn listen [flags] ADDR   accept connections, print their messages, answer them
//	jsonconn demo [flags]          an echo server and client on loopback, then a throughput run
//	jsonconn bench [flags] ADDR    a load generator against a running server
//	jsonconn help [COMMAND]        this text, or a command's flags
//
// ADDR is host:port for TCP (":7000" listens on every interface) or
// unix:/path/to.sock for a Unix socket. Every command takes -max-frame, the
// cap on the payload of a message in either direction (default 256KiB).
//
// Input is NDJSON: each line of stdin is sent as one message. A line that is
// not JSON, or longer than the cap, is reported on stderr with its line number
// and not sent; -bad=skip (the default) goes on with the next line, -bad=stop
// stops reading stdin. Blank lines are ignored. Output is one line per
// message, compacted if the sender put newlines in it, or indented with
// -pretty. Payloads are printed byte for byte otherwise: a string with
// invalid UTF-8, which JSON decoders accept, is printed as it came.
//
// SIGINT (Ctrl-C) and SIGTERM shut down cleanly: listeners are closed, a
// message half-written is finished, output already received is flushed. A
// second signal exits at once.
//
// Exit status:
//
//	0    success: stdin ended and the peer closed, or the run finished
//	1    a connection or I/O error, or a peer broke the protocol
//	2    a usage error: an unknown command or flag, a bad ADDR or value
//	3    dial: a stdin line was refused (not JSON, or over the cap); the others were sent
//	130  stopped by SIGINT, after a clean shutdown (listen runs until a signal)
//	143  stopped by SIGTERM, after a clean shutdown
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/jsonconn/jsonconn"
)

// Exit statuses; the package documentation lists them for users.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitBadInput = 3
)

// An env is what a command runs against: the process's standard streams and
// signals in main, pipes in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	signals        <-chan os.Signal
}

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, signals: sigs}))
}

// A command is one subcommand: its name, a one-line synopsis for the
// overview, and its implementation.
type command struct {
	name, synopsis string
	run            func(args []string, e *env) int
}

var commands []command

func init() {
	// Assigned here, not in the declaration, because help refers to
	// commands.
	commands = []command{
		{"dial", "connect to ADDR; send stdin lines as messages, print the messages received", runDial},
		{"listen", "accept connections on ADDR; print their messages; answer them or send stdin lines", runListen},
		{"demo", "run an echo server and a client on loopback, then measure throughput", runDemo},
		{"bench", "generate load against a server at ADDR and report its throughput", runBench},
		{"help", "show this overview, or the flags of a command", runHelp},
	}
}

// run runs the command line args (without the program name) and returns the
// exit status.
func run(args []string, e *env) int {
	if len(args) == 0 {
		overview(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		overview(e.stdout)
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd.run(args[1:], e)
		}
	}
	fmt.Fprintf(e.stderr, "jsonconn: unknown command %q; run 'jsonconn help'\n", name)
	return exitUsage
}

func overview(w io.Writer) {
	fmt.Fprint(w, `jsonconn is netcat for framed JSON: a 4-byte big-endian length, then one JSON value.

Usage:
	jsonconn COMMAND [flags] [ADDR]

Commands:
`)
	for _, cmd := range commands {
		fmt.Fprintf(w, "\t%-7s %s\n", cmd.name, cmd.synopsis)
	}
	fmt.Fprint(w, `
ADDR is host:port for TCP or unix:/path/to.sock for a Unix socket.
Run 'jsonconn help COMMAND' or 'jsonconn COMMAND -h' for a command's flags.

`+exitStatuses)
}

// exitStatuses is the table of exit statuses that the help texts show.
const exitStatuses = `Exit status:
	0    success: stdin ended and the peer closed, or the run finished
	1    a connection or I/O error, or a peer broke the protocol
	2    a usage error: an unknown command or flag, a bad ADDR or value
	3    dial: a stdin line was refused (not JSON, or over the cap); the others were sent
	130  stopped by SIGINT, after a clean shutdown (listen runs until a signal)
	143  stopped by SIGTERM, after a clean shutdown
`

func runHelp(args []string, e *env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		overview(e.stdout)
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name == args[0] && cmd.name != "help" {
			return cmd.run([]string{"-h"}, e)
		}
	}
	if args[0] == "help" {
		overview(e.stdout)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "jsonconn help: unknown command %q\n", args[0])
	return exitUsage
}

// A flagSet is a command's flag.FlagSet with the usage conventions of this
// tool: -h prints the usage on stdout and exits 0, and a bad flag prints the
// error and a hint on stderr and exits 2.
type flagSet struct {
	*flag.FlagSet
	usage, about string
	e            *env
	pos          []string // positional arguments, once parsed
}

func newFlagSet(e *env, name, usage, about string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), usage: usage, about: about, e: e}
	fs.SetOutput(e.stderr)
	fs.Usage = func() {} // parse prints what it needs
	return fs
}

// parse parses args and checks the number of positional arguments. Flags
// may come before or after them ("listen :7000 -echo"), up to a "--". When
// it returns ok false, the command must return status.
func (fs *flagSet) parse(args []string, nargs int) (status int, ok bool) {
	var pos []string
	err := fs.Parse(args)
	for err == nil && fs.NArg() > 0 {
		rest := fs.Args()
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		err = fs.Parse(args)
	}
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(fs.e.stdout)
		fmt.Fprintf(fs.e.stdout, "usage: jsonconn %s %s\n\n%s\n\nFlags:\n", fs.Name(), fs.usage, fs.about)
		fs.PrintDefaults()
		fmt.Fprintf(fs.e.stdout, "\n%s", exitStatuses)
		return exitOK, false
	}
	if err == nil && len(pos) != nargs {
		if len(pos) < nargs {
			err = errors.New("missing ADDR")
		} else {
			err = fmt.Errorf("unexpected argument %q", pos[nargs])
		}
		fmt.Fprintf(fs.e.stderr, "jsonconn %s: %v\n", fs.Name(), err)
	}
	if err != nil {
		// flag has printed its own errors.
		fmt.Fprintf(fs.e.stderr, "usage: jsonconn %s %s (run 'jsonconn %s -h' for help)\n", fs.Name(), fs.usage, fs.Name())
		return exitUsage, false
	}
	fs.pos = pos
	return 0, true
}

// An endpoint is where a command connects or listens, with the library
// configuration for its connections.
type endpoint struct {
	network, address string
	cfg              *jsonconn.Config
}

// parseEndpoint parses args, which must hold one ADDR, for a command with
// the -max-frame flag maxFrame. When it returns ok false, the command must
// return status.
func (fs *flagSet) parseEndpoint(args []string, maxFrame *sizeValue) (ep endpoint, status int, ok bool) {
	if status, ok := fs.parse(args, 1); !ok {
		return ep, status, false
	}
	var err error
	if ep.network, ep.address, err = parseAddr(fs.pos[0]); err == nil {
		ep.cfg, err = config(maxFrame)
	}
	if err != nil {
		return ep, fs.usageError("%v", err), false
	}
	return ep, 0, true
}

// usageError reports a bad flag value or argument found after parsing.
func (fs *flagSet) usageError(format string, args ...any) int {
	fmt.Fprintf(fs.e.stderr, "jsonconn %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	return exitUsage
}

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
