// Command backend is one jsonconn backend for the HAProxy harness: it
// serves haproxy.NewServer on -listen, trusting the PROXY protocol header
// from -trust only, and shuts down with Server.Shutdown on SIGTERM.
//
//	backend -name a -listen 127.0.0.1:7001 -trust 127.0.0.2
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/haproxy"
)

func main() {
	name := flag.String("name", "a", "the backend's `name`, in its replies")
	listen := flag.String("listen", "127.0.0.1:0", "the `address` to listen on")
	trust := flag.String("trust", "127.0.0.2", "the `IP` whose PROXY protocol header is trusted")
	flag.Parse()
	ln, err := haproxy.Listen(*listen, net.ParseIP(*trust))
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	srv := haproxy.NewServer(*name, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	fmt.Fprintf(os.Stderr, "backend %s: listening on %s\n", *name, ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sigs:
	case err := <-served:
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, jsonconn.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "backend:", err)
	}
	fmt.Fprintf(os.Stderr, "backend %s: shut down\n", *name)
}
