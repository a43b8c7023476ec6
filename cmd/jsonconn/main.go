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
//	jsonconn check [flags] ADDR    a conformance suite for any framed-JSON echo peer
//	jsonconn tap [flags] LISTEN_ADDR TARGET_ADDR
//	                               a transparent proxy that prints every frame passing through
//	jsonconn help [COMMAND]        this text, or a command's flags
//
// ADDR is host:port for TCP (":7000" listens on every interface) or
// unix:/path/to.sock for a Unix socket. Every command takes -max-frame, the
// cap on the payload of a message in either direction (default 256KiB).
// dial, bench and check speak TLS with -tls (and -tls-ca, -tls-server-name,
// -tls-insecure); listen serves it with -tls-cert and -tls-key.
//
// dial -reconnect keeps its connection up across server restarts, with a
// jsonconn.Client: it says on stderr when the connection ends and comes
// back, sends the lines read meanwhile on the new connection, never sends a
// line twice, and names the lines sent on a connection that then ended,
// which may not have arrived.
//
// check runs numbered cases against an echo peer in any language, each keyed
// to a section of docs/protocol.md, with a verdict of pass, non-strict (a
// SHOULD not met), fail (a MUST violated), info, or skipped (after a peer
// stopped accepting connections), as a table, -json or -junit XML; the cases
// are package jsonconntest. bench keeps at most -window messages in flight per connection
// and reports the round trips' percentiles.
//
// tap sits between two peers, forwards every byte unchanged both ways
// (FIN as a half-close, a reset as a reset, backpressure through) and prints
// each frame, the connections' opens and closes, and protocol violations with
// the side that broke the rule: the first tool for debugging a peer in
// another language.
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
//	1    a connection or I/O error, a peer broke the protocol, or (check) a case failed
//	2    a usage error: an unknown command or flag, a bad ADDR or value
//	3    dial: a stdin line was refused (not JSON, or over the cap); the others were sent
//	4    check: the peer could not be reached at all, or it speaks another protocol
//	130  stopped by SIGINT, after a clean shutdown (listen runs until a signal)
//	143  stopped by SIGTERM, after a clean shutdown
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses. exitStatuses describes every one.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitBadInput    = 3
	exitUnreachable = 4
)

// exitStatuses is the one table of the command's exit statuses. help prints
// it; the package documentation's copy is checked against it by
// TestExitStatusesAreDocumented.
var exitStatuses = []struct {
	status  int
	meaning string
}{
	{exitOK, "success: stdin ended and the peer closed, or the run finished"},
	{exitError, "a connection or I/O error, a peer broke the protocol, or (check) a case failed"},
	{exitUsage, "a usage error: an unknown command or flag, a bad ADDR or value"},
	{exitBadInput, "dial: a stdin line was refused (not JSON, or over the cap); the others were sent"},
	{exitUnreachable, "check: the peer could not be reached at all, or it speaks another protocol"},
	{128 + int(syscall.SIGINT), "stopped by SIGINT, after a clean shutdown (listen runs until a signal)"},
	{128 + int(syscall.SIGTERM), "stopped by SIGTERM, after a clean shutdown"},
}

// printExitStatuses writes the table of exit statuses as help shows it.
func printExitStatuses(w io.Writer) {
	fmt.Fprintln(w, "Exit status:")
	for _, s := range exitStatuses {
		fmt.Fprintf(w, "\t%-4d %s\n", s.status, s.meaning)
	}
}

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
		{"bench", "generate load against a server at ADDR and report its throughput and latency", runBench},
		{"check", "check the echo peer at ADDR against the protocol, case by case", runCheck},
		{"tap", "forward LISTEN_ADDR to TARGET_ADDR unchanged, printing every frame that passes", runTap},
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

`)
	printExitStatuses(w)
}

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
