// Package haproxy is a jsonconn service made to run behind HAProxy: a
// Server whose listener reads the PROXY protocol header HAProxy sends
// (send-proxy-v2), trusted only from HAProxy's source address, and whose
// handler answers requests with ids, and HAProxy's health check.
package haproxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/jsonconn/jsonconn"
	proxyproto "github.com/pires/go-proxyproto"
)

// A Request is what a client sends: Ping for a health check or a
// heartbeat, or a numbered call, ID, in its Try-th attempt.
type Request struct {
	ID   int64 `json:"id,omitempty"`
	Try  int   `json:"try,omitempty"`
	Ping bool  `json:"ping,omitempty"`
	// SleepMS makes the backend take that long over the call, at most
	// 5 s, whatever happens meanwhile: Shutdown lets it finish.
	SleepMS int `json:"sleep_ms,omitempty"`
}

// A Reply answers a Request: Pong for a ping, or the call's ID and Try with
// the backend that answered it and the client's address as the backend sees
// it.
type Reply struct {
	ID      int64  `json:"id,omitempty"`
	Try     int    `json:"try,omitempty"`
	Pong    bool   `json:"pong,omitempty"`
	Backend string `json:"backend,omitempty"`
	Client  string `json:"client,omitempty"`
}

// PingFrame and PongFrame are the health check's request and reply, as
// HAProxy's tcp-check send-binary and expect binary take them: the frames
// of {"ping":true} and {"pong":true}.
const (
	PingFrame = "0000000d" + "7b2270696e67223a747275657d"
	PongFrame = "0000000d" + "7b22706f6e67223a747275657d"
)

// TrustFrom returns the policy of a PROXY protocol listener that requires
// the header from the balancer at ip and refuses it from anyone else: a
// client that connects directly and sends a header of its own, to forge its
// address, is refused. A client that connects directly without a header is
// served, with its own address.
func TrustFrom(ip net.IP) proxyproto.ConnPolicyFunc {
	return func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		if a, ok := o.Upstream.(*net.TCPAddr); ok && a.IP.Equal(ip) {
			return proxyproto.REQUIRE, nil
		}
		return proxyproto.REJECT, nil
	}
}

// Listen returns a listener on addr that reads the PROXY protocol header
// from trusted (see TrustFrom), waiting at most 5 s for it.
//
// go-proxyproto reads the header on the connection's first Read, or its
// first RemoteAddr or LocalAddr call, which blocks until the header has
// arrived or ReadHeaderTimeout has passed. Never call them in a Server's
// ConnState or ConnContext, which run on the accept loop: one client that
// sends nothing would stall every accept for that long. The handler's
// RemoteAddr is the place.
func Listen(addr string, trusted net.IP) (*jsonconn.Listener, error) {
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	pl := &proxyproto.Listener{Listener: tcp, ConnPolicy: TrustFrom(trusted), ReadHeaderTimeout: 5 * time.Second}
	return jsonconn.NewListener(pl, nil), nil
}

// NewServer returns the Server of a backend named name: it answers pings
// with pongs (HAProxy's check and the clients' heartbeat) and each call
// with its ID, the backend's name and the client's address. It logs a slow
// call at level Info as it starts it.
func NewServer(name string, logger *slog.Logger) *jsonconn.Server {
	return &jsonconn.Server{
		Logger:       logger,
		FrameTimeout: 10 * time.Second,
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			client := c.RemoteAddr().String() // after the PROXY header: the real client
			for {
				var req Request
				if err := c.Receive(&req); err != nil {
					if !errors.Is(err, jsonconn.ErrServerClosed) && !errors.Is(err, net.ErrClosed) && logger != nil {
						logger.Debug("connection ended", "client", client, "err", err)
					}
					return
				}
				if req.SleepMS > 0 {
					if logger != nil {
						logger.Info("handling a slow call", "id", req.ID, "ms", req.SleepMS)
					}
					time.Sleep(time.Duration(min(req.SleepMS, 5000)) * time.Millisecond) // a peer sets it: bounded
				}
				rep := Reply{Pong: req.Ping}
				if !req.Ping {
					rep = Reply{ID: req.ID, Try: req.Try, Backend: name, Client: client}
				}
				if err := c.Send(rep); err != nil {
					return
				}
			}
		}),
	}
}
