package jsonconn

import "net"

// A Listener accepts framed-JSON connections: it wraps each conn that an
// inner net.Listener accepts in a *Conn, as tls.NewListener does for TLS. It
// is a net.Listener, so it goes wherever one does (Server.Serve, or any
// Serve(net.Listener)); AcceptConn returns the *Conn without a type
// assertion, as net.TCPListener's AcceptTCP does.
//
// A Listener is safe for concurrent use, as far as its inner listener is:
// Accept, AcceptConn, Close and Addr may be called from several goroutines
// at once.
type Listener struct {
	inner net.Listener
	cfg   Config
}

// NewListener returns a Listener whose connections are the conns that inner
// accepts, each wrapped in a *Conn configured by cfg. A nil cfg means the
// defaults; cfg is copied, so later changes to it have no effect.
//
// For framed JSON over TLS, wrap a TLS listener:
//
//	ln := jsonconn.NewListener(tls.NewListener(tcpListener, tlsConfig), nil)
func NewListener(inner net.Listener, cfg *Config) *Listener {
	l := &Listener{inner: inner}
	if cfg != nil {
		l.cfg = *cfg
	}
	return l
}

// Listen announces on the local network address and returns a Listener
// whose connections are configured by cfg. The network must carry a byte
// stream: "tcp", "tcp4", "tcp6" or "unix"; others are refused with an error
// wrapping net.UnknownNetworkError. See net.Listen for the address syntax.
func Listen(network, address string, cfg *Config) (*Listener, error) {
	inner, err := listenStream(network, address)
	if err != nil {
		return nil, err
	}
	return NewListener(inner, cfg), nil
}

// listenStream is net.Listen for the networks that carry a byte stream; it
// refuses the others, for Listen and Server.ListenAndServe.
func listenStream(network, address string) (net.Listener, error) {
	if !streamNetwork(network) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	return net.Listen(network, address)
}

// AcceptConn waits for the next connection and returns it as a *Conn. Its
// errors are those of the inner listener's Accept.
func (l *Listener) AcceptConn() (*Conn, error) {
	c, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return New(c, &l.cfg), nil
}

// Accept waits for the next connection and returns it. It implements
// net.Listener: the net.Conn is always a *Conn (or nil, with an error). Code
// that wants the *Conn calls AcceptConn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err // not a nil *Conn in a non-nil interface
	}
	return c, nil
}

// Close closes the inner listener. Any blocked Accept or AcceptConn is
// unblocked and returns an error. Conns already accepted stay open.
func (l *Listener) Close() error { return l.inner.Close() }

// Addr returns the inner listener's network address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// streamNetwork reports whether network carries a byte stream, which framing
// needs: datagram and packet networks would cut frames at their boundaries.
func streamNetwork(network string) bool {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
		return true
	}
	return false
}
