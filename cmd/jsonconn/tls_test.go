package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCertFiles writes a self-signed certificate for 127.0.0.1 and
// "localhost", and its key, as PEM files, and returns their paths.
func testCertFiles(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jsonconn test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLS runs listen over TLS, and dial, bench and check against it,
// verifying its certificate with -tls-ca.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, key := testCertFiles(t)
	l := start(t, strings.NewReader(""), "listen", "-echo", "-tls-cert", cert, "-tls-key", key, "127.0.0.1:0")
	addr := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)

	d := expect(t, exitOK, "{\"over\":\"tls\"}\n", "dial", "-tls-ca", cert, addr)
	if got := d.stdout.String(); got != "{\"over\":\"tls\"}\n" {
		t.Errorf("dial over TLS printed %q", got)
	}
	b := expect(t, exitOK, "", "bench", "-tls-ca", cert, "-count", "200", "-size", "64", addr)
	if !strings.Contains(b.stdout.String(), "200 messages of 64 bytes echoed") {
		t.Errorf("bench over TLS: %q", b.stdout)
	}
	c := expect(t, exitOK, "", "check", "-tls-ca", cert, "-run", `^1\.(1|9)$`, addr)
	if !strings.Contains(c.stdout.String(), "2 cases: 2 pass") {
		t.Errorf("check over TLS:\n%s", c.stdout)
	}
	// Without the CA the certificate does not verify: a connection error.
	expect(t, exitError, "{}\n", "dial", "-tls", addr)
	// -tls-insecure skips the verification.
	expect(t, exitOK, "{}\n", "dial", "-tls-insecure", addr)
}

func TestTLSFlagErrors(t *testing.T) {
	t.Parallel()
	cert, _ := testCertFiles(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"listen", "-tls-cert", cert, "127.0.0.1:0"}, "-tls-cert and -tls-key go together"},
		{[]string{"dial", "-tls-ca", cert, "-tls-insecure", "127.0.0.1:1"}, "contradict"},
		{[]string{"dial", "-tls-ca", "/nonexistent.pem", "127.0.0.1:1"}, "-tls-ca"},
		{[]string{"check", "-tls-ca", os.Args[0], "127.0.0.1:1"}, "no PEM certificate"},
	} {
		p := expect(t, exitUsage, "", tc.args...)
		if !strings.Contains(p.stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, p.stderr, tc.want)
		}
	}
}
