package jsonconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// A transport makes a connected pair of raw conns.
type transport struct {
	name string
	pair func(t testing.TB) (net.Conn, net.Conn)
}

// transports are the underlying conns every Conn test runs over.
var transports = []transport{
	{"pipe", pipePair},
	{"tcp", tcpPair},
	{"unix", unixPair},
	{"tls", tlsPair},
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	return a, b
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	return listenPair(t, "tcp", "127.0.0.1:0")
}

func unixPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	return unixNetPair(t, "unix")
}

// unixNetPair returns both ends of a connection over a temporary Unix
// socket of the network "unix" or "unixpacket".
func unixNetPair(t testing.TB, network string) (net.Conn, net.Conn) {
	t.Helper()
	// t.TempDir can exceed the 104-108 byte limit on socket paths.
	dir, err := os.MkdirTemp("", "jc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return listenPair(t, network, filepath.Join(dir, "s"))
}

// listenPair dials a fresh listener once and returns both ends.
func listenPair(t testing.TB, network, address string) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	a, err := net.DialTimeout(network, ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := <-accepted
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	return a, r.c
}

func tlsPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	a, b := tcpPair(t)
	cert := testCert(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	client := tls.Client(a, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	server := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return client, server
}

var (
	certOnce sync.Once
	certVal  tls.Certificate
	certErr  error
)

// testCert returns a self-signed certificate for "localhost", made once.
func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "localhost"},
			DNSNames:              []string{"localhost"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			certErr = err
			return
		}
		certVal = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	})
	if certErr != nil {
		t.Fatal(certErr)
	}
	return certVal
}

// connPair wraps a raw pair from tr in Conns configured by cfg and closes
// them when the test ends.
func connPair(t testing.TB, tr transport, cfg *jsonconn.Config) (*jsonconn.Conn, *jsonconn.Conn) {
	t.Helper()
	a, b := tr.pair(t)
	ca, cb := jsonconn.New(a, cfg), jsonconn.New(b, cfg)
	t.Cleanup(func() {
		ca.Close()
		cb.Close()
	})
	return ca, cb
}

// eachTransport runs f as a parallel subtest over every transport.
func eachTransport(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}
