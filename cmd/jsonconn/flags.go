package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jsonconn/jsonconn"
)

// Flags and arguments: the conventions every command follows (flagSet),
// ADDR, and the flag values the commands share.

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
		fmt.Fprintln(fs.e.stdout)
		printExitStatuses(fs.e.stdout)
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

// parseAddr splits an ADDR argument into a network and an address for
// net.Dial and net.Listen: "unix:/path" is a Unix socket, anything else is
// host:port over TCP.
func parseAddr(s string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("bad ADDR %q: unix: needs a socket path, as in unix:/tmp/j.sock", s)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("bad ADDR %q: want host:port or unix:/path", s)
	}
	if port == "" {
		return "", "", fmt.Errorf("bad ADDR %q: no port (use :0 to listen on any free port)", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return "", "", fmt.Errorf("bad ADDR %q: bad port %q", s, port)
		}
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// A sizeValue is a flag holding a byte count, written as a number with an
// optional unit: 4096, 4KiB, 4K, 1MiB, 1M (powers of 1024).
type sizeValue int

func (s *sizeValue) String() string { return formatSize(int(*s)) }

func (s *sizeValue) Set(v string) error {
	num, mult := v, 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 31)
	// The library treats a larger cap as its limit; refuse one rather than
	// silently lower it.
	if err != nil || uint64(n)*uint64(mult) > jsonconn.MaxFrameSizeLimit {
		return errors.New("want a byte count up to 1GiB, such as 4096, 64KiB or 1MiB")
	}
	*s = sizeValue(int(n) * mult)
	return nil
}

// formatSize writes n in the largest unit that divides it.
func formatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}

// maxFrameFlag adds the -max-frame flag that every command has.
func maxFrameFlag(fs *flagSet) *sizeValue {
	v := sizeValue(jsonconn.DefaultMaxFrameSize)
	fs.Var(&v, "max-frame", "the largest message payload `size`, sent or received (up to 1GiB)")
	return &v
}

// config returns the library configuration for a -max-frame value.
func config(maxFrame *sizeValue) (*jsonconn.Config, error) {
	if *maxFrame < 1 {
		return nil, errors.New("-max-frame must be at least 1 byte")
	}
	return &jsonconn.Config{MaxFrameSize: int(*maxFrame)}, nil
}

// A badPolicy says what to do with a stdin line that cannot be sent.
type badPolicy string

const (
	badSkip badPolicy = "skip" // report it and go on with the next line
	badStop badPolicy = "stop" // report it and stop reading stdin
)

func (p *badPolicy) String() string { return string(*p) }

func (p *badPolicy) Set(v string) error {
	switch badPolicy(v) {
	case badSkip, badStop:
		*p = badPolicy(v)
		return nil
	}
	return errors.New(`want "skip" or "stop"`)
}

// badFlag adds the -bad flag of the commands that read stdin.
func badFlag(fs *flagSet) *badPolicy {
	p := badSkip
	fs.Var(&p, "bad", "the `policy` for a stdin line that is not JSON or is over the cap: \"skip\" it, or \"stop\" reading\nstdin; either way it is reported with its line number and not sent")
	return &p
}
