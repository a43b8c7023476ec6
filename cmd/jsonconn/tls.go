package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS: the flags of the commands that dial (dial, bench, check) and of
// listen, and the tls.Config they make.

// tlsClient holds the TLS flags of a command that dials.
type tlsClient struct {
	on         *bool
	caFile     *string
	serverName *string
	insecure   *bool
}

// tlsClientFlags adds -tls, -tls-ca, -tls-server-name and -tls-insecure.
func tlsClientFlags(fs *flagSet) *tlsClient {
	return &tlsClient{
		on:         fs.Bool("tls", false, "speak TLS to the peer, verifying its certificate against the system's roots"),
		caFile:     fs.String("tls-ca", "", "verify the peer's certificate against the PEM certificates in this `file` instead\n(implies -tls)"),
		serverName: fs.String("tls-server-name", "", "the `name` the peer's certificate must have, if not ADDR's host (implies -tls)"),
		insecure:   fs.Bool("tls-insecure", false, "do not verify the peer's certificate at all: for tests only (implies -tls)"),
	}
}

// config returns the TLS configuration the flags ask for, or nil for none.
func (f *tlsClient) config() (*tls.Config, error) {
	if !*f.on && *f.caFile == "" && *f.serverName == "" && !*f.insecure {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: *f.serverName, InsecureSkipVerify: *f.insecure}
	if *f.caFile != "" {
		if *f.insecure {
			return nil, errors.New("-tls-ca and -tls-insecure contradict each other")
		}
		pem, err := os.ReadFile(*f.caFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca: no PEM certificate in %s", *f.caFile)
		}
	}
	return cfg, nil
}

// tlsServer holds listen's TLS flags.
type tlsServer struct {
	certFile, keyFile *string
}

// tlsServerFlags adds -tls-cert and -tls-key.
func tlsServerFlags(fs *flagSet) *tlsServer {
	return &tlsServer{
		certFile: fs.String("tls-cert", "", "serve TLS with the PEM certificate (chain) in this `file`; needs -tls-key"),
		keyFile:  fs.String("tls-key", "", "the PEM private key of -tls-cert, in this `file`"),
	}
}

// config returns the TLS configuration the flags ask for, or nil for none.
func (f *tlsServer) config() (*tls.Config, error) {
	switch {
	case *f.certFile == "" && *f.keyFile == "":
		return nil, nil
	case *f.certFile == "" || *f.keyFile == "":
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(*f.certFile, *f.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert, -tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}
