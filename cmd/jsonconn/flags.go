package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jsonconn/jsonconn"
)

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

// maxFrameLimit is the largest -max-frame: the library clamps its cap to
// 1 GiB, and the tool refuses more rather than silently lower it.
const maxFrameLimit = 1 << 30

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
	if err != nil || uint64(n)*uint64(mult) > maxFrameLimit {
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
