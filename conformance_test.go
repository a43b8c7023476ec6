package jsonconn_test

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/jsonconn/jsonconn"
)

// TestNetConnConformance runs the x/net conformance suite for net.Conn over
// each transport whose own conn passes it. TLS does not: crypto/tls breaks its
// write side for good after a write timeout, which the suite does not allow.
func TestNetConnConformance(t *testing.T) {
	for _, tr := range transports {
		if tr.name == "tls" {
			continue
		}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				a, b := tr.pair(t)
				// The suite writes random bytes, so payloads are opaque.
				cfg := &jsonconn.Config{DisableValidation: true}
				c1, c2 = jsonconn.New(a, cfg), jsonconn.New(b, cfg)
				stop = func() {
					c1.Close()
					c2.Close()
				}
				return c1, c2, stop, nil
			})
		})
	}
}
