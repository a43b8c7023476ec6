package jsonconn

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
)

// Dial connects to the address on the named network and returns a *Conn
// configured by cfg (nil means the defaults). Networks are those of net.Dial
// with a byte stream: "tcp", "tcp4", "tcp6" and "unix". Use a Dialer for
// timeouts, contexts, keep-alive settings or TLS.
func Dial(network, address string, cfg *Config) (*Conn, error) {
	return (&Dialer{Config: cfg}).DialConn(context.Background(), network, address)
}

// A Dialer dials framed-JSON connections, the way tls.Dialer dials TLS ones.
// The zero value dials with a zero net.Dialer and the default Config.
//
// DialConn is the method to use: it takes a context and returns the *Conn.
// Dial and DialContext return a net.Conn (always a *Conn), so that a Dialer
// fits wherever a net.Conn dialer goes; net.Dialer's DialTCP is the
// precedent for a context and a concrete type without a Context suffix.
//
// A Dialer's methods may be called concurrently. Its fields must not change
// while it dials.
type Dialer struct {
	// NetDialer dials the underlying connection: its Timeout, Deadline,
	// KeepAlive, KeepAliveConfig, LocalAddr and so on apply. Nil means a
	// zero net.Dialer. Timeout and Deadline also bound the TLS handshake.
	NetDialer *net.Dialer

	// Config configures the returned Conn; nil means the defaults.
	Config *Config

	// TLSConfig, if not nil, makes the Dialer run a TLS client handshake
	// over the dialed connection before framing starts, as tls.Dialer does.
	// If its ServerName is empty, the host part of a TCP address is used;
	// over a Unix socket it must be set (or verification turned off).
	TLSConfig *tls.Config
}

// Dial connects to the address on the named network. The returned
// net.Conn is a *Conn.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to the address on the named network using ctx, as
// DialConn does. It returns a net.Conn, which is a *Conn, so that the Dialer
// fits wherever a net.Conn dialer goes (as tls.Dialer's DialContext does);
// code that wants the *Conn calls DialConn instead.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.DialConn(ctx, network, address)
	if err != nil {
		return nil, err // not a nil *Conn in a non-nil interface
	}
	return c, nil
}

// DialConn connects to the address on the named network using ctx and
// returns the *Conn. If ctx ends before the connection (and TLS handshake)
// is complete, an error is returned; once connected, ctx has no further
// effect.
func (d *Dialer) DialConn(ctx context.Context, network, address string) (*Conn, error) {
	if !streamNetwork(network) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	nd := d.NetDialer
	if nd == nil {
		nd = new(net.Dialer)
	}
	if d.TLSConfig != nil {
		// As in crypto/tls, the dialer's timeout covers the handshake too.
		if nd.Timeout != 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, nd.Timeout)
			defer cancel()
		}
		if !nd.Deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, nd.Deadline)
			defer cancel()
		}
	}
	raw, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if d.TLSConfig != nil {
		if raw, err = tlsClient(ctx, raw, d.TLSConfig, network, address); err != nil {
			return nil, err
		}
	}
	return New(raw, d.Config), nil
}

// tlsClient runs a TLS client handshake over raw, closing raw on failure.
func tlsClient(ctx context.Context, raw net.Conn, cfg *tls.Config, network, address string) (net.Conn, error) {
	if cfg.ServerName == "" && network != "unix" {
		// A Unix socket's path names no host: crypto/tls then refuses to
		// verify without a ServerName, which says what to fix.
		host := address
		if h, _, err := net.SplitHostPort(address); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}
