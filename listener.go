package jsonconn

import "net"

// NewListener returns a listener whose Accept wraps each conn that inner
// accepts in a *Conn configured by cfg, as tls.NewListener does for TLS. A nil
// cfg means the defaults; cfg is copied, so later changes to it have no
// effect.
//
// For framed JSON over TLS, wrap a TLS listener:
//
//	ln := jsonconn.NewListener(tls.NewListener(tcpListener, tlsConfig), nil)
func NewListener(inner net.Listener, cfg *Config) net.Listener {
	l := &listener{Listener: inner}
	if cfg != nil {
		l.cfg = *cfg
	}
	return l
}

// Listen announces on the local network address and returns a listener
// whose Accept returns *Conn configured by cfg. The network must carry a byte
// stream: "tcp", "tcp4", "tcp6" or "unix". See net.Listen for the address
// syntax.
func Listen(network, address string, cfg *Config) (net.Listener, error) {
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

type listener struct {
	net.Listener
	cfg Config
}

// Accept waits for the next connection and returns it as a *Conn.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return New(c, &l.cfg), nil
}

// streamNetwork reports whether network carries a byte stream, which framing
// needs: datagram and packet networks would cut frames at their boundaries.
func streamNetwork(network string) bool {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
		return true
	}
	return false
}
